"""DP synthesis of tables: ``synthesize(df, epsilon=..., delta=...)`` and ``Synthesizer``.

Modules: :mod:`.parsing` (CSV as text, per-value parse rules), :mod:`.schema` (public metadata),
:mod:`.encoding` (finite public domain), :mod:`.dp_domain` (the DP domain stage: types, row count,
bounds, categories; a calibrate/run pair), :mod:`.plan` (budget split), :mod:`.methods` (AIM, MST,
independent, DP-SGD VAE), :mod:`.synthesize` (the API), :mod:`.diagnostics` (degenerate columns
found from DP outputs), :mod:`.infer` (metadata templates and DP metadata), :mod:`.quality`
(non-private utility metrics for evaluation and benchmarks).
"""

from dpsynth.constants import DEFAULT_DELTA
from dpsynth.tabular.diagnostics import DegenerateColumnWarning
from dpsynth.tabular.dp_domain import UnreliableDPBoundsWarning
from dpsynth.tabular.synthesize import (
    EmptyTableError,
    SynthesisResult,
    Synthesizer,
    synthesize,
)

__all__ = [
    "DEFAULT_DELTA",
    "DegenerateColumnWarning",
    "EmptyTableError",
    "SynthesisResult",
    "Synthesizer",
    "UnreliableDPBoundsWarning",
    "synthesize",
]
