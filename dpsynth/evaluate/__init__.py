"""Evaluation of synthetic data: utility, diversity, contamination, privacy audits, release decision.

Naming: this sub-package is ``dpsynth.evaluate`` and the entry point is the function
``dpsynth.evaluate.evaluate(...)`` (import it as ``from dpsynth.evaluate import evaluate``).
The package is not made callable; a top-level ``dpsynth.evaluate`` attribute cannot be both the
package and the function, so the function lives one level down.

Modules (one job each): :mod:`.api` (the ``evaluate`` entry point, which dispatches to)
:mod:`.tabular_eval` (tables) and :mod:`.text_eval` (text corpora); their metrics
:mod:`.tabular_metrics`, :mod:`.text_metrics`, :mod:`.contamination`, :mod:`.audit`; the report's
shared pieces :mod:`.sections`; :mod:`.decision` (ship / regenerate / reject, each reason marked
with the data it read); :mod:`.card_summary` (the card's ``evals``); :mod:`.report` (HTML);
:mod:`.mix` (hybrid sets); :mod:`.io` (loading); :mod:`.files` (the CLI workflows);
:mod:`.errors` (``EvaluationError``, a :class:`dpsynth.errors.DpsynthError`).

Privacy: evaluation is **not** differentially private. Every number computed from real records is
marked ``reads_private_data: true`` in the report and the card and must not be published.
"""

from dpsynth.evaluate.api import EvaluationResult, evaluate
from dpsynth.evaluate.card_summary import card_evals
from dpsynth.evaluate.decision import DecisionThresholds, decide
from dpsynth.evaluate.errors import EvaluationError, EvaluationInputError
from dpsynth.evaluate.files import evaluate_files, mix_files

__all__ = ["DecisionThresholds", "EvaluationError", "EvaluationInputError", "EvaluationResult", "card_evals",
           "decide", "evaluate", "evaluate_files", "mix_files"]
