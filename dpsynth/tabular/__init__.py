"""DP synthesis of tables: ``synthesize(df, epsilon=..., delta=...)`` and ``Synthesizer``.

Modules: :mod:`.schema` (public metadata), :mod:`.encoding` (finite public domain),
:mod:`.dp_domain` (DP release of missing domain parts), :mod:`.plan` (budget split),
:mod:`.methods` (AIM, MST, independent, DP-SGD VAE), :mod:`.synthesize` (the API),
:mod:`.quality` (non-private utility metrics for evaluation and benchmarks).
"""

from dpsynth.tabular.synthesize import (
    DEFAULT_DELTA,
    EmptyTableError,
    SynthesisResult,
    Synthesizer,
    synthesize,
)

__all__ = ["DEFAULT_DELTA", "EmptyTableError", "SynthesisResult", "Synthesizer", "synthesize"]
