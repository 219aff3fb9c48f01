"""Private prediction (InvisibleInk-style) as steps: plan -> load -> charge -> decode -> complete.

Privacy unit: one private text (with its label). Guarantee: the returned texts (and labels) are
(epsilon, delta)-DP under adding or removing one text; proof in :mod:`dpsynth.text.privacy`.

1. :func:`plan_private_prediction` -- ``B`` (public rule when "auto"), clip ``C`` from
   (epsilon, delta, B, T, temperature); no data read;
2. :func:`dpsynth.text.models.load_causal_lm` -- the public model (steps 1-2 in
   :func:`dpsynth.text.synthesis.prepare_generation`, before any charge);
3. :func:`dpsynth.text.charging.spend_before_reading` -- BudgetExceededError here means no
   private text has been read or tokenized;
4. :func:`decode_private_groups` -- read the texts, partition them with a fresh secret key,
   decode all groups in batches (sampling noise from :mod:`dpsynth.randomness`); the progress
   bar's updates follow how groups pack into chunks, which depends on group sizes: a side
   channel outside the guarantee (:mod:`dpsynth.text.privacy`);
5. the spend block records the completion -- keyed fingerprint of the source, number of outputs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dpsynth.accounting import Ledger, fingerprint_texts
from dpsynth.randomness import secret_torch_generator
from dpsynth.text.auto import auto_group_size
from dpsynth.text.charging import TextChargePlan, spend_before_reading
from dpsynth.text.engine import DecodeSettings, GroupPrompts, decode_groups, model_device, pad_token_id, stop_token_ids
from dpsynth.text.grouping import fresh_key, partition_texts
from dpsynth.text.privacy import MECHANISM_NAME, TextPrivacyPlan, calibrate_text_mechanism
from dpsynth.text.prompts import PromptEncoder, PromptTemplate
from dpsynth.text.request import TextRequest, check_int
from dpsynth.text.result import TextSynthesisResult
from dpsynth.text.runtime import cpu_threads

OPERATION = "text.generate"
DEFAULT_MAX_EXAMPLE_TOKENS = 256


@dataclass(frozen=True)
class PrivatePredictionPlan:
    """Public plan of one private-prediction call (everything fixed before data is read)."""

    privacy: TextPrivacyPlan
    group_size_rule: str
    template: PromptTemplate
    max_example_tokens: int
    top_k: int

    @property
    def group_size(self) -> int:
        return self.privacy.group_size


def plan_private_prediction(
    request: TextRequest, group_size: int | str, max_example_tokens: int
) -> PrivatePredictionPlan:
    """Resolve ``B`` ("auto" -> :func:`dpsynth.text.auto.auto_group_size`) and calibrate ``C``."""
    if group_size == "auto":
        size = auto_group_size(
            request.budget.epsilon, request.budget.delta, request.max_new_tokens, request.temperature,
            request.total_outputs,
        )
        rule = "auto (target clip 1.0 logit; dpsynth.text.auto)"
    else:
        size = check_int("group_size", group_size)
        rule = "given"
    max_example_tokens = check_int("max_example_tokens", max_example_tokens)
    privacy = calibrate_text_mechanism(
        request.budget.epsilon, request.budget.delta, size, request.max_new_tokens, request.temperature
    )
    template = PromptTemplate(instruction=request.instruction) if request.instruction is not None else PromptTemplate()
    return PrivatePredictionPlan(privacy, rule, template, max_example_tokens, request.top_k)


def decoding_record(request: TextRequest, plan: PrivatePredictionPlan) -> dict[str, Any]:
    """Public decoding parameters recorded in the ledger and the card."""
    return {
        "group_size": plan.group_size,
        "group_size_rule": plan.group_size_rule,
        "max_new_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_k": plan.top_k,
        "clip": plan.privacy.clip,
        "max_example_tokens": plan.max_example_tokens,
        "num_texts_per_label": {str(k): v for k, v in request.outputs.items()},
        "label_set": request.label_set,
        "prompt_template": plan.template.describe(),
        "prompt_template_sha256": plan.template.sha256(),
        "grouping": "keyed BLAKE2b hash of (label, text) mod num_texts, fresh secret key per call",
        "sampling_randomness": "torch.Generator seeded from OS entropy (dpsynth.randomness; seed never stored)",
    }


def decode_private_groups(
    loaded: Any,
    texts: list[str],
    labels: list[str] | None,
    request: TextRequest,
    plan: PrivatePredictionPlan,
    max_batch_rows: int,
    progress: bool,
    ray: Any = None,
) -> list[str]:
    """Partition the private texts and decode one output per group (after the charge)."""
    groups = partition_texts(texts, request.outputs, fresh_key(), labels)
    tokenizer = loaded.tokenizer
    encoder = PromptEncoder(tokenizer, plan.template, plan.max_example_tokens)
    public_ids = {label: encoder.public_ids(label) for label in request.outputs}
    prompts = [GroupPrompts(public_ids[g.label], encoder.private_ids(list(g.members), g.label)) for g in groups]
    order = list(range(len(groups)))
    random.Random(request.seed).shuffle(order)  # non-private: only the decoding order
    settings = DecodeSettings(
        max_new_tokens=request.max_new_tokens,
        clip=plan.privacy.clip,
        divisor=plan.group_size,
        temperature=request.temperature,
        top_k=plan.top_k,
        stop_token_ids=stop_token_ids(tokenizer, loaded.model),
        pad_token_id=pad_token_id(tokenizer),
        max_rows=max_batch_rows,
    )
    device = model_device(loaded.model)
    if ray is not None:  # groups decoded on Ray actors, noise drawn inside each actor
        from dpsynth.text.ray_backend import ray_decode_groups

        decoded = ray_decode_groups(loaded.model, [prompts[i] for i in order], settings, workers=ray[0], address=ray[1])
    else:
        with cpu_threads(device):
            decoded = decode_groups(
                loaded.model, [prompts[i] for i in order], settings,
                generator=secret_torch_generator(device), progress=progress,
            )
    token_ids: list[list[int]] = [[] for _ in groups]
    for position, index in enumerate(order):
        token_ids[index] = decoded[position]
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in token_ids]


def read_texts(texts: Sequence[Any], labels: Sequence[Any] | None) -> tuple[list[str], list[str] | None]:
    """The private texts as strings (after the charge; a non-string fails, the charge stays).

    The error names no position, type or value of the offending text: it is shown after the
    charge, but is not a DP release."""
    text_list = list(texts)
    if not all(isinstance(text, str) for text in text_list):
        raise TypeError("every text must be a string (str); the call stopped after its charge")
    return text_list, None if labels is None else [str(v) for v in labels]


def run_private_prediction(
    texts: Sequence[Any],
    labels: Sequence[Any] | None,
    request: TextRequest,
    plan: PrivatePredictionPlan,
    loaded: Any,
    *,
    ledger: Any,
    source_name: str,
    rows_per_batch: int,
    progress: bool,
    ray: Any = None,
) -> TextSynthesisResult:
    """Charge, decode and complete one private-prediction call for a validated request and plan
    (model loaded and ``rows_per_batch`` checked before: :func:`dpsynth.text.synthesis.prepare_generation`)."""
    generator_model = {"name": loaded.name, "license": loaded.license, "source": loaded.source}
    decoding = decoding_record(request, plan)
    charge = TextChargePlan(
        mechanism=MECHANISM_NAME,
        event=plan.privacy.event,
        delta=request.budget.delta,
        sampling="partition",
        parameters={**plan.privacy.describe(), **{k: v for k, v in decoding.items() if k != "prompt_template"}},
    )
    with spend_before_reading(
        ledger, request.budget, charge, operation=OPERATION, generator_model=generator_model, source_name=source_name
    ) as (ledger, step):
        # ---- private data from here on
        text_list, label_list = read_texts(texts, labels)
        out_texts = decode_private_groups(loaded, text_list, label_list, request, plan, rows_per_batch, progress, ray)
        step.source_fingerprint = fingerprint_texts(text_list, label_list)
        step.outputs = {"kind": "synthetic_texts", "count": len(out_texts)}
    groups_labels = [label for label, count in request.outputs.items() for _ in range(count)]
    return TextSynthesisResult(
        texts=out_texts,
        labels=None if request.label_set is None else [str(lab) for lab in groups_labels],
        ledger=ledger if isinstance(ledger, Ledger) else ledger.load(),
        plan=plan.privacy,
        generator_model=generator_model,
        decoding=decoding,
        method="private_prediction",
    )
