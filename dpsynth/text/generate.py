"""``dpsynth.text.generate``: DP synthetic texts by private prediction, with ledger and card.

Privacy unit: one private text (with its label when labelled). Guarantee: the returned texts
(and labels) are (epsilon, delta)-DP under adding or removing one text; the proof is in
:mod:`dpsynth.text.privacy`. Order of a call (the accounting contract):

1. validate the budget and every public parameter (no data read);
2. calibrate the clip ``C`` from (epsilon, delta, B, T, temperature);
3. load the model (public);
4. charge the ledger -- :class:`~dpsynth.accounting.BudgetExceededError` here means no private
   text has been read or tokenized;
5. read the texts, partition them with a fresh secret key, decode all groups in batches;
6. record completion (keyed fingerprint of the source, number of outputs).

Public by construction: the number of outputs (``num_texts`` per label, default
:data:`DEFAULT_NUM_TEXTS`; never derived from the number of inputs), the maximum length ``T``,
``B``, ``C``, the label set (declared by the caller), the prompts and the model.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpsynth.accounting import Ledger, LedgerFile, PrivacyBudget, fingerprint_texts
from dpsynth.text.engine import DecodeSettings, GroupPrompts, decode_groups, entropy_generator, model_device
from dpsynth.text.grouping import fresh_key, partition_texts
from dpsynth.text.privacy import (
    MECHANISM_NAME,
    NEIGHBOURING_RELATION,
    PRIVACY_UNIT,
    TextPrivacyPlan,
    calibrate_text_mechanism,
)
from dpsynth.text.prompts import PromptEncoder, PromptTemplate

DEFAULT_DELTA = 1e-6
DEFAULT_NUM_TEXTS = 10
DEFAULT_GROUP_SIZE = 8
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_K = 50
DEFAULT_MAX_EXAMPLE_TOKENS = 256
OPERATION = "text.generate"
#: warn when the texts exceed this many times the nominal capacity ``num_texts * group_size``
LARGE_GROUP_FACTOR = 4


class LargeGroupsWarning(UserWarning):
    """Many more texts than ``num_texts * group_size``: groups will be large and slow."""


class TooFewTextsError(ValueError):
    """Fewer private texts than one group: refused before anything is generated."""


@dataclass
class TextSynthesisResult:
    """Synthetic texts (and labels) from one DP call, with the ledger that records their cost."""

    texts: list[str]
    labels: list[str] | None
    ledger: Ledger
    plan: TextPrivacyPlan
    generator_model: dict[str, Any]
    decoding: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[dict[str, str]]:
        """One ``{"text": ...}`` (plus ``"label"``) dict per synthetic text."""
        if self.labels is None:
            return [{"text": t} for t in self.texts]
        return [{"text": t, "label": lab} for t, lab in zip(self.texts, self.labels)]

    def card(self) -> dict[str, Any]:
        """The dataset card of this release (privacy block derived from the ledger)."""
        from dpsynth.card import build_card

        return build_card(
            self.ledger,
            generator_model=self.generator_model,
            filters=[],
            extra={"text_generation": {**self.decoding, "privacy": self.plan.describe()}},
        )

    def save(self, path: str | Path, force: bool = False):
        """Write ``path`` (JSONL), ``path.ledger.json`` and ``path.card.yaml`` atomically.

        Refuses to overwrite existing files unless ``force``. Returns the release paths.
        """
        from dpsynth.release import write_release

        records = self.records()

        def write_data(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                for record in records:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")

        return write_release(path, write_data, self.ledger, self.card(), force=force)


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _outputs_per_label(
    num_texts: int | Mapping[str, int] | None, label_set: Sequence[str] | None
) -> dict[str | None, int]:
    """Public number of outputs per label (``None`` key when unlabelled)."""
    if label_set is None:
        if isinstance(num_texts, Mapping):
            raise ValueError("num_texts may be a mapping only for labelled data")
        return {None: _check_int("num_texts", DEFAULT_NUM_TEXTS if num_texts is None else num_texts)}
    if isinstance(num_texts, Mapping):
        counts = {str(k): _check_int(f"num_texts[{k!r}]", v) for k, v in num_texts.items()}
        missing = [lab for lab in label_set if lab not in counts]
        extra = [lab for lab in counts if lab not in label_set]
        if missing or extra:
            raise ValueError(f"num_texts must name exactly the label set; missing {missing}, unknown {extra}")
        return {lab: counts[lab] for lab in label_set}
    per_label = _check_int("num_texts", DEFAULT_NUM_TEXTS if num_texts is None else num_texts)
    return {lab: per_label for lab in label_set}


def _public_label_set(labels: Any, label_set: Sequence[Any] | None) -> list[str] | None:
    if labels is None:
        if label_set is not None:
            raise ValueError("label_set was given but labels were not")
        return None
    if label_set is None:
        raise ValueError(
            "labelled data needs the PUBLIC label set (label_set=[...], CLI --labels a,b,c): the set of "
            "labels must not be read from the private data"
        )
    if isinstance(label_set, str) or not isinstance(label_set, Sequence):
        raise ValueError("label_set must be a list of labels")
    public = [str(v) for v in label_set]
    if not public:
        raise ValueError("label_set is empty")
    if len(set(public)) != len(public):
        raise ValueError("label_set contains duplicates")
    return public


def _sized(name: str, obj: Any) -> int:
    if isinstance(obj, (str, bytes)) or not hasattr(obj, "__len__"):
        raise TypeError(f"{name} must be a sequence (list, tuple, pandas Series) of strings")
    return len(obj)


def generate(
    texts: Sequence[str],
    *,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    labels: Sequence[Any] | None = None,
    label_set: Sequence[Any] | None = None,
    num_texts: int | Mapping[str, int] | None = None,
    model: Any = None,
    instruction: str | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int = DEFAULT_TOP_K,
    max_example_tokens: int = DEFAULT_MAX_EXAMPLE_TOKENS,
    seed: int | None = None,
    ledger: Ledger | LedgerFile | None = None,
    source_name: str = "texts",
    device: str | None = None,
    max_batch_rows: int | None = None,
    progress: bool = True,
    backend: str = "memory",
    ray_address: str | None = None,
    ray_workers: Any = 2,
) -> TextSynthesisResult:
    """Generate DP synthetic texts similar to ``texts``.

    Privacy unit: one text (with its label). The output is (epsilon, delta)-DP under
    add-or-remove one text (proof: :mod:`dpsynth.text.privacy`).

    Args:
        texts: the private texts (a sized sequence; it is not read before the ledger is charged).
        epsilon, delta: the budget of this call (delta must be in (0, 1)).
        labels: optional private label per text; requires ``label_set``.
        label_set: the PUBLIC label set (declared by the caller, never read from the data); each
            label gets ``num_texts`` outputs (or ``num_texts[label]``). Texts with a label outside
            the set are refused.
        num_texts: number of synthetic texts (per label), public; default ``DEFAULT_NUM_TEXTS``.
            Each output is driven by one disjoint group of the private texts.
        model: ``None`` (SmolLM2-135M-Instruct), a local model path / GGUF / cached hub id, a
            ``(model, tokenizer)`` pair or a ``LoadedModel`` (see :mod:`dpsynth.text.models`).
        instruction: the public task description placed in every prompt.
        group_size: ``B``, the public divisor (nominal texts per group). Larger ``B`` allows a
            larger clip (more private signal) at the same epsilon and costs more compute.
        max_new_tokens: ``T``, public maximum length of every output (tokens).
        temperature, top_k: sampling temperature and Top-k+ size (public).
        max_example_tokens: each private text is truncated to this many tokens in its prompt.
        seed: controls non-private choices only (the order groups are decoded in). The sampling
            noise is drawn from OS entropy and cannot be seeded; the grouping key is also fresh.
        ledger: an existing ledger to charge (privacy unit must be one text): a
            :class:`~dpsynth.accounting.Ledger` (in memory) or a
            :class:`~dpsynth.accounting.LedgerFile` (on disk, locked per update); default a new
            in-memory ledger with budget (epsilon, delta).
        source_name: name of the source recorded in a new ledger.
        device: torch device (default CUDA when available, else CPU).
        max_batch_rows: rows per forward batch (default 64 on CPU, 1024 on CUDA).
        progress: show a tqdm progress bar.
        backend: ``memory`` (default, this process) or ``ray``: the groups are decoded on
            ``ray_workers`` Ray actors (a number, or actors from
            :func:`dpsynth.text.ray_backend.start_workers` to reuse loaded replicas), on the cluster
            ``ray_address`` (default a local one). Same mechanism, same ledger entry.

    Raises:
        InvalidBudgetError / ValueError: bad budget or parameter (nothing read).
        TooFewTextsError: fewer texts than ``group_size`` (nothing generated or charged).
        BudgetExceededError: the ledger cannot afford the call (no text read or tokenized).
        TypeError: a text is not a string. This is found while reading the texts, i.e. after the
            charge; the charge stays in the ledger (conservative: data was accessed).
    """
    from dpsynth.text.models import load_causal_lm

    budget = PrivacyBudget(epsilon, delta)
    if not 0 < budget.delta < 1:
        raise ValueError(f"DP text generation needs 0 < delta < 1, got {delta!r}")
    group_size = _check_int("group_size", group_size)
    max_new_tokens = _check_int("max_new_tokens", max_new_tokens)
    top_k = _check_int("top_k", top_k)
    max_example_tokens = _check_int("max_example_tokens", max_example_tokens)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        math.isfinite(temperature) and temperature > 0
    ):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    if backend not in ("memory", "ray"):
        raise ValueError(f"backend must be 'memory' or 'ray', got {backend!r}")
    if backend == "ray":  # fail before the charge when Ray is missing
        from dpsynth.ray_support import require_ray

        require_ray()
        if isinstance(ray_workers, int):
            _check_int("ray_workers", ray_workers)
    public_labels = _public_label_set(labels, label_set)
    outputs = _outputs_per_label(num_texts, public_labels)
    template = PromptTemplate(instruction=instruction) if instruction is not None else PromptTemplate()
    if ledger is not None:
        unit = ledger.privacy_unit if isinstance(ledger, Ledger) else ledger.load().privacy_unit
        if unit != PRIVACY_UNIT:
            raise ValueError(
                f"the ledger's privacy unit is {unit!r}, not {PRIVACY_UNIT!r}; "
                "charges under different privacy units do not compose"
            )

    n_texts = _sized("texts", texts)
    if labels is not None and _sized("labels", labels) != n_texts:
        raise ValueError(f"{_sized('labels', labels)} labels for {n_texts} texts")
    if n_texts == 0:
        raise TooFewTextsError("no texts were given")
    if n_texts < group_size:
        raise TooFewTextsError(
            f"too few texts: {n_texts} given, but one group needs group_size={group_size}; "
            "give more texts or lower group_size (nothing was generated or charged)"
        )

    total_groups = sum(outputs.values())
    if n_texts > LARGE_GROUP_FACTOR * total_groups * group_size:
        # shown to the caller only (who holds the data); nothing of it enters the release
        warnings.warn(
            f"{n_texts} texts for {total_groups} output(s) of nominal group size {group_size}: every text is "
            "one forward row per generated token, so groups this large are slow and memory-hungry; "
            "num_texts around len(texts) / group_size uses the data in smaller, parallel groups",
            LargeGroupsWarning,
            stacklevel=2,
        )
    plan = calibrate_text_mechanism(budget.epsilon, budget.delta, group_size, max_new_tokens, float(temperature))
    loaded = load_causal_lm(model, device)
    device_name = str(model_device(loaded.model))
    rows_per_batch = max_batch_rows or (64 if device_name == "cpu" else 1024)
    _check_int("max_batch_rows", rows_per_batch, minimum=2)
    generator_model = {"name": loaded.name, "license": loaded.license, "source": loaded.source}
    decoding = {
        "group_size": group_size,
        "max_new_tokens": max_new_tokens,
        "temperature": float(temperature),
        "top_k": top_k,
        "clip": plan.clip,
        "max_example_tokens": max_example_tokens,
        "num_texts_per_label": {str(k): v for k, v in outputs.items()},
        "label_set": public_labels,
        "prompt_template": template.describe(),
        "prompt_template_sha256": template.sha256(),
        "grouping": "keyed BLAKE2b hash of (label, text) mod num_texts, fresh secret key per call",
        "sampling_randomness": "torch.Generator seeded from os.urandom (seed withheld, never stored)",
    }

    # ---- charge BEFORE any private record is read
    if ledger is None:
        ledger = Ledger.create(budget, privacy_unit=PRIVACY_UNIT, source_name=source_name)
    entry = ledger.charge(
        operation=OPERATION,
        mechanism=MECHANISM_NAME,
        delta=budget.delta,
        event=plan.event,
        sampling="partition",
        parameters={**plan.describe(), **{k: v for k, v in decoding.items() if k != "prompt_template"}},
        provenance={"generator_model": generator_model, "neighbouring_relation_proved": NEIGHBOURING_RELATION},
        limit=budget,
    )

    # ---- private data from here on
    text_list = list(texts)
    for index, text in enumerate(text_list):
        if not isinstance(text, str):
            raise TypeError(f"text #{index} is {type(text).__name__}, not a string")
    label_list = None if labels is None else [str(v) for v in labels]
    groups = partition_texts(text_list, outputs, fresh_key(), label_list)

    tokenizer = loaded.tokenizer
    encoder = PromptEncoder(tokenizer, template, max_example_tokens)
    public_ids = {label: encoder.public_ids(label) for label in outputs}
    prompts = [GroupPrompts(public_ids[g.label], encoder.private_ids(list(g.members), g.label)) for g in groups]
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)  # non-private: only the decoding order
    settings = DecodeSettings(
        max_new_tokens=max_new_tokens,
        clip=plan.clip,
        divisor=group_size,
        temperature=float(temperature),
        top_k=top_k,
        stop_token_ids=_stop_token_ids(loaded),
        pad_token_id=_pad_token_id(tokenizer),
        max_rows=rows_per_batch,
    )
    if backend == "ray":  # groups decoded on Ray actors, noise drawn inside each actor
        from dpsynth.text.ray_backend import ray_decode_groups

        decoded = ray_decode_groups(loaded.model, [prompts[i] for i in order], settings, workers=ray_workers,
                                    address=ray_address)
    else:
        decoded = decode_groups(
            loaded.model,
            [prompts[i] for i in order],
            settings,
            generator=entropy_generator(model_device(loaded.model)),
            progress=progress,
        )
    token_ids: list[list[int]] = [[] for _ in groups]
    for position, index in enumerate(order):
        token_ids[index] = decoded[position]
    out_texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in token_ids]
    out_labels = None if public_labels is None else [str(g.label) for g in groups]
    ledger.complete(
        entry,
        source_fingerprint=fingerprint_texts(text_list, label_list),
        outputs={"kind": "synthetic_texts", "count": len(out_texts)},
    )
    return TextSynthesisResult(
        texts=out_texts,
        labels=out_labels,
        ledger=ledger if isinstance(ledger, Ledger) else ledger.load(),
        plan=plan,
        generator_model=generator_model,
        decoding=decoding,
    )


def _stop_token_ids(loaded: Any) -> tuple[int, ...]:
    ids: set[int] = set()
    eos = getattr(loaded.tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.add(int(eos))
    config_eos = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif isinstance(config_eos, (list, tuple)):
        ids.update(int(v) for v in config_eos)
    return tuple(sorted(ids))


def _pad_token_id(tokenizer: Any) -> int:
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return 0
