"""Evaluation of synthetic data: utility, diversity, contamination, privacy audits, release decision.

Naming: this sub-package is ``dpsynth.evaluate`` and the entry point is the function
``dpsynth.evaluate.evaluate(...)`` (import it as ``from dpsynth.evaluate import evaluate``).
The package is not made callable; a top-level ``dpsynth.evaluate`` attribute cannot be both the
package and the function, so the function lives one level down.

Modules (one job each): :mod:`.tabular_metrics`, :mod:`.text_metrics`, :mod:`.contamination`,
:mod:`.audit`, :mod:`.decision`, :mod:`.report`, :mod:`.mix`, :mod:`.io`, :mod:`.api`,
:mod:`.files` (the CLI workflows).

Privacy: evaluation is **not** differentially private. Every number computed from real records is
marked ``reads_private_data: true`` in the report and the card and must not be published.
"""

from dpsynth.evaluate.api import EvaluationResult, card_evals, evaluate
from dpsynth.evaluate.decision import DecisionThresholds, decide
from dpsynth.evaluate.files import evaluate_files, mix_files

__all__ = ["DecisionThresholds", "EvaluationResult", "card_evals", "decide", "evaluate",
           "evaluate_files", "mix_files"]
