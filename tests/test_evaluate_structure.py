"""The evaluate package's public surface and layout (issue 13 §3, §5): one module per kind, one error base."""

from __future__ import annotations

import ast
import importlib
import inspect

import pandas as pd
import pytest

from dpsynth.errors import DpsynthError


def test_public_names_stay_importable() -> None:
    import dpsynth.evaluate as ev

    for name in ("evaluate", "evaluate_files", "mix_files", "card_evals", "decide", "DecisionThresholds",
                 "EvaluationResult", "EvaluationError", "EvaluationInputError"):
        assert hasattr(ev, name), name
    from dpsynth.evaluate import evaluate
    from dpsynth.evaluate.api import EvaluationResult, card_evals, round_summary  # old module paths still work
    from dpsynth.evaluate.io import EvaluationInputError

    assert callable(evaluate) and callable(card_evals) and callable(round_summary)
    assert ev.EvaluationResult is EvaluationResult and ev.EvaluationInputError is EvaluationInputError


def test_tables_and_texts_are_evaluated_in_their_own_modules() -> None:
    tabular = importlib.import_module("dpsynth.evaluate.tabular_eval")
    text = importlib.import_module("dpsynth.evaluate.text_eval")

    def imports(module) -> set[str]:
        tree = ast.parse(inspect.getsource(module))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
            for a in n.names}

    assert not any("text" in name for name in imports(tabular) if name.startswith("dpsynth"))
    assert not any("tabular" in name for name in imports(text) if name.startswith("dpsynth"))
    api = importlib.import_module("dpsynth.evaluate.api")
    assert api.evaluate_table is tabular.evaluate_table and api.evaluate_text is text.evaluate_text


def test_evaluation_errors_are_dpsynth_errors_and_value_errors() -> None:
    from dpsynth.evaluate import EvaluationError, EvaluationInputError, evaluate
    from dpsynth.evaluate.mix import validate_ratio

    assert issubclass(EvaluationError, DpsynthError) and issubclass(EvaluationError, ValueError)
    assert issubclass(EvaluationInputError, EvaluationError)
    table = pd.DataFrame({"a": ["x", "y"] * 10, "b": [1, 2] * 10})
    with pytest.raises(EvaluationInputError, match="target column 'nope' not found"):
        evaluate(table, table, target="nope", run_sdmetrics=False, ledger_epsilon=1.0)
    with pytest.raises(DpsynthError, match="audit_size"):
        evaluate(table, table, audit_size=1, ledger_epsilon=1.0)
    with pytest.raises(DpsynthError, match="non-empty"):
        evaluate([], ["a text"], ledger_epsilon=1.0)
    with pytest.raises(ValueError):  # still a ValueError for older callers
        validate_ratio(1.5)
