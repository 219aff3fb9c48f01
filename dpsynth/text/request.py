"""Step 1 of every text call: validate the public inputs (nothing private is read here).

Everything in a :class:`TextRequest` is public: the budget, the declared label set, the number
of outputs per label, the prompt template, decoding parameters. :func:`validate_request` sees
public arguments only; :func:`check_inputs` then checks the shape of the call's private arguments
(a sequence of texts, labels exactly when a label set was declared, as many labels as texts, a
ledger under the text privacy unit) -- the texts are only *sized* (``len``), never read. Errors
raised here carry no count or value of private data (issue 8 §4): they name arguments only. No
warning depends on the private texts or their number either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dpsynth.accounting import Ledger, LedgerFile, PrivacyBudget
from dpsynth.errors import DpsynthError
from dpsynth.text.privacy import PRIVACY_UNIT

DEFAULT_NUM_TEXTS = 10


class TooFewTextsError(DpsynthError, ValueError):
    """Kept for compatibility; no longer raised: no input size is refused (issue 8 §4)."""


class TextInputError(DpsynthError, ValueError):
    """A public argument of a text call is invalid (nothing was read or charged)."""


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an integer ``>= minimum`` (not a bool), else :class:`TextInputError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TextInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_temperature(value: Any) -> float:
    """A finite temperature > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise TextInputError(f"temperature must be a finite number > 0, got {value!r}")
    return float(value)


def outputs_per_label(
    num_texts: int | Mapping[str, int] | None, label_set: Sequence[str] | None
) -> dict[str | None, int]:
    """Public number of outputs per label (``None`` key when unlabelled)."""
    if label_set is None:
        if isinstance(num_texts, Mapping):
            raise TextInputError("num_texts may be a mapping only for labelled data")
        return {None: check_int("num_texts", DEFAULT_NUM_TEXTS if num_texts is None else num_texts)}
    if isinstance(num_texts, Mapping):
        counts = {str(k): check_int(f"num_texts[{k!r}]", v) for k, v in num_texts.items()}
        missing = [lab for lab in label_set if lab not in counts]
        extra = [lab for lab in counts if lab not in label_set]
        if missing or extra:
            raise TextInputError(f"num_texts must name exactly the label set; missing {missing}, unknown {extra}")
        return {lab: counts[lab] for lab in label_set}
    per_label = check_int("num_texts", DEFAULT_NUM_TEXTS if num_texts is None else num_texts)
    return {lab: per_label for lab in label_set}


def public_label_set(label_set: Sequence[Any] | None) -> list[str] | None:
    """The caller's declared label set as strings (never read from the data); None when unlabelled."""
    if label_set is None:
        return None
    if isinstance(label_set, str) or not isinstance(label_set, Sequence):
        raise TextInputError("label_set must be a list of labels")
    public = [str(v) for v in label_set]
    if not public:
        raise TextInputError("label_set is empty")
    if len(set(public)) != len(public):
        raise TextInputError("label_set contains duplicates")
    return public


def sized(name: str, obj: Any) -> int:
    """``len(obj)`` for a sequence of texts (a single string is refused)."""
    if isinstance(obj, (str, bytes)) or not hasattr(obj, "__len__"):
        raise TypeError(f"{name} must be a sequence (list, tuple, pandas Series) of strings")
    return len(obj)


def check_ledger_unit(ledger: Ledger | LedgerFile | None) -> None:
    """Refuse a ledger kept under another privacy unit (charges would not compose)."""
    if ledger is None:
        return
    unit = ledger.privacy_unit if isinstance(ledger, Ledger) else ledger.load().privacy_unit
    if unit != PRIVACY_UNIT:
        raise TextInputError(
            f"the ledger's privacy unit is {unit!r}, not {PRIVACY_UNIT!r}; "
            "charges under different privacy units do not compose"
        )


#: private prediction's Top-k+ size: the candidate set comes from public logits (engine docs)
PRIVATE_PREDICTION_DEFAULT_TOP_K = 50
#: PE samples its public candidates from the 200 likeliest tokens. Measured (docs/text-bench.md,
#: third round; epsilon 3, 2 corpora x 2 seeds): top-k 50 makes the public pool too narrow for the
#: vote to match the private texts (MAUVE 0.08-0.20); the whole vocabulary (0) raises MAUVE to
#: 0.26-0.35 but costs accuracy on the convention corpus (-0.06, -0.12 vs real); 200 keeps MAUVE
#: at 0.21-0.32 with accuracy within 0.04 of real texts in all four cells.
PE_DEFAULT_TOP_K = 200


@dataclass(frozen=True)
class TextRequest:
    """The validated public inputs shared by every text method."""

    budget: PrivacyBudget
    label_set: list[str] | None
    outputs: dict[str | None, int]
    instruction: str | None
    max_new_tokens: int
    temperature: float
    top_k: int | None  # None until :meth:`for_method` fills in the method's default
    seed: int | None

    def for_method(self, method: str) -> TextRequest:
        """This request with ``top_k`` resolved for ``method`` when the caller left it ``None``:
        :data:`PE_DEFAULT_TOP_K` for ``pe``, :data:`PRIVATE_PREDICTION_DEFAULT_TOP_K` otherwise."""
        if self.top_k is not None:
            return self
        default = PE_DEFAULT_TOP_K if method == "pe" else PRIVATE_PREDICTION_DEFAULT_TOP_K
        return replace(self, top_k=default)

    @property
    def total_outputs(self) -> int:
        """Number of synthetic texts over all labels (public)."""
        return sum(self.outputs.values())


def validate_request(
    *,
    epsilon: float,
    delta: float,
    label_set: Sequence[Any] | None,
    num_texts: int | Mapping[str, int] | None,
    instruction: str | None,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int | None,
) -> TextRequest:
    """Check every public argument (no texts, no labels, no ledger). Raises before anything is loaded."""
    budget = PrivacyBudget(epsilon, delta)
    if not 0 < budget.delta < 1:
        raise TextInputError(f"DP text generation needs 0 < delta < 1, got {delta!r}")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens)
    top_k = None if top_k is None else check_int("top_k", top_k, minimum=0)
    temperature = check_temperature(temperature)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TextInputError(f"seed must be an integer or None, got {seed!r}")
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise TextInputError("instruction must be a non-empty string")
    public_labels = public_label_set(label_set)
    outputs = outputs_per_label(num_texts, public_labels)
    return TextRequest(
        budget=budget,
        label_set=public_labels,
        outputs=outputs,
        instruction=instruction,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
    )


def check_inputs(texts: Any, labels: Any, label_set: Sequence[Any] | None,
                 ledger: Ledger | LedgerFile | None) -> None:
    """The shape of a call's private arguments, before the charge: ``texts`` (and ``labels``) are
    sized, never read; ``labels`` must come exactly with a declared ``label_set``; ``ledger`` must
    count the text privacy unit.

    No input size is refused -- not ``n < B``, not even ``n = 0`` (empty groups decode from the
    public prompt; PE then selects among public candidates by noise alone) -- and no warning
    depends on it, so what the caller sees before the charge never depends on how many texts
    there are. (Whether the labels and texts have the same length is a property of the call,
    checked here with a count-free message.)
    """
    if labels is None and label_set is not None:
        raise TextInputError("label_set was given but labels were not")
    if labels is not None and label_set is None:
        raise TextInputError(
            "labelled data needs the PUBLIC label set (label_set=[...], CLI --labels a,b,c): the set of "
            "labels must not be read from the private data"
        )
    check_ledger_unit(ledger)
    n_texts = sized("texts", texts)
    if labels is not None and sized("labels", labels) != n_texts:
        raise TextInputError("labels and texts have different lengths")
