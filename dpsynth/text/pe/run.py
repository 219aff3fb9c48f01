"""Private Evolution as steps: plan -> load (model, embedder) -> charge -> embed + evolve -> complete.

Steps 1-2 run in :func:`dpsynth.text.synthesis.prepare_generation` (public inputs only, before any
charge); :func:`run_pe` is steps 3-5.

Privacy unit: one private text (with its label). Guarantee: the returned texts (and labels) are
(epsilon, delta)-DP under adding or removing one text; proof in :mod:`dpsynth.text.pe.privacy`.

1. :func:`plan_pe` -- sigma from (epsilon, delta, iterations) with the ledger's accountants; no
   data read;
2. load the public model and the embedder (public inputs);
3. :func:`dpsynth.text.charging.spend_before_reading` -- BudgetExceededError here means no
   private text has been read or embedded;
4. read the texts, embed them once, run :func:`dpsynth.text.pe.evolution.run_private_evolution`
   (noise from :func:`dpsynth.randomness.secret_numpy_rng`);
5. the spend block records the completion -- keyed fingerprint of the source, number of outputs.

Compute: ``n`` embeddings once, then per iteration ``sum_l N_l * V`` generations by the public
model and ``sum_l N_l * (1 + V)`` candidate embeddings -- independent of ``n`` and of any group size.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpsynth.accounting import Ledger, fingerprint_texts
from dpsynth.randomness import secret_numpy_rng
from dpsynth.text.charging import TextChargePlan, spend_before_reading
from dpsynth.text.embeddings import embed_checked
from dpsynth.text.engine import model_device
from dpsynth.text.pe.evolution import run_private_evolution
from dpsynth.text.pe.generator import EngineGenerator
from dpsynth.text.pe.histogram import DEFAULT_VOTE_SPACE, check_vote_space
from dpsynth.text.pe.privacy import MECHANISM_NAME, PEPrivacyPlan, calibrate_pe
from dpsynth.text.pe.variation import DEFAULT_VARIATION_KINDS, check_variation_kinds
from dpsynth.text.private_prediction import read_texts
from dpsynth.text.prompts import DEFAULT_INSTRUCTION
from dpsynth.text.request import TextInputError, TextRequest, check_int
from dpsynth.text.result import TextSynthesisResult
from dpsynth.text.runtime import cpu_threads

OPERATION = "text.generate"


@dataclass(frozen=True)
class PEPlan:
    """Public plan of one Private Evolution call (fixed before any private text is read)."""

    privacy: PEPrivacyPlan
    variations: int
    instruction: str
    variation_kinds: tuple[str, ...] = DEFAULT_VARIATION_KINDS
    vote_space: str = DEFAULT_VOTE_SPACE


def plan_pe(request: TextRequest, iterations: int, variations: int, threshold: float | None,
            variation_kinds: Sequence[str] | None = None, vote_space: str | None = None) -> PEPlan:
    """Calibrate sigma for ``iterations`` Gaussian vote histograms within the request's budget.

    ``variation_kinds`` (public; default :data:`~dpsynth.text.pe.variation.DEFAULT_VARIATION_KINDS`)
    are the variation prompts a kept candidate's variations cycle through; ``vote_space`` (public;
    default :data:`~dpsynth.text.pe.histogram.DEFAULT_VOTE_SPACE`) where the votes measure nearness."""
    variations = check_int("variations", variations)
    try:
        kinds = check_variation_kinds(tuple(DEFAULT_VARIATION_KINDS if variation_kinds is None else variation_kinds))
        space = check_vote_space(DEFAULT_VOTE_SPACE if vote_space is None else vote_space)
    except ValueError as exc:
        raise TextInputError(str(exc)) from None
    privacy = calibrate_pe(request.budget.epsilon, request.budget.delta, iterations, threshold)
    return PEPlan(privacy=privacy, variations=variations, instruction=request.instruction or DEFAULT_INSTRUCTION,
                  variation_kinds=kinds, vote_space=space)


def decoding_record(request: TextRequest, plan: PEPlan, embedder_name: str) -> dict[str, Any]:
    """Public parameters recorded in the ledger and the card."""
    return {
        "iterations": plan.privacy.iterations,
        "variations_per_candidate": plan.variations,
        "noise_multiplier": plan.privacy.noise_multiplier,
        "threshold": plan.privacy.threshold,
        "max_new_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_k": request.top_k,
        "num_texts_per_label": {str(k): v for k, v in request.outputs.items()},
        "label_set": request.label_set,
        "instruction": plan.instruction,
        "embedder": embedder_name,
        "variation_prompts": f"{', '.join(plan.variation_kinds)} in turn, adaptive length (dpsynth.text.pe.variation)",
        "vote_space": plan.vote_space,
        "noise_randomness": "numpy Generator seeded from OS entropy (dpsynth.randomness; seed never stored)",
    }


def _label_ids(labels: list[str] | None, label_set: list[str] | None, n: int) -> np.ndarray:
    """Label id per private text. A label outside the declared set stops the call (after the charge)
    with a message that names the public label set only -- no position, value or count."""
    if labels is None:
        return np.zeros(n, dtype=np.int64)
    index = {lab: i for i, lab in enumerate(label_set or [])}
    if not all(lab in index for lab in labels):
        raise ValueError(f"a text has a label that is not in the declared label set {sorted(index)}")
    return np.asarray([index[lab] for lab in labels], dtype=np.int64).reshape(n)


def _evolve(
    text_list: list[str],
    label_list: list[str] | None,
    request: TextRequest,
    plan: PEPlan,
    loaded: Any,
    embed: Any,
    rows: int,
    progress: bool,
    decode: Any = None,
) -> tuple[list[str], list[int]]:
    """Embed the private texts once and run the evolution loop (inside the spend block).

    ``decode`` (optional) writes the public candidates elsewhere (Ray actors); the private texts,
    their embeddings and the noisy votes stay in this process."""
    private_groups = _label_ids(label_list, request.label_set, len(text_list))
    group_labels = list(request.outputs)  # group id g -> public label (None when unlabelled)
    per_group = {g: request.outputs[label] for g, label in enumerate(group_labels)}
    generate = EngineGenerator(
        loaded, max_new_tokens=request.max_new_tokens, temperature=request.temperature,
        top_k=request.top_k, max_rows=rows, progress=progress, decode=decode,
    )
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else None
    with cpu_threads(model_device(loaded.model)):
        # no text, no embedder call: a caller's function need not handle an empty list
        private_embeddings = embed_checked(embed, text_list) if text_list else np.zeros((0, 0))
        out_texts, out_groups, _trace = run_private_evolution(
            private_embeddings=private_embeddings,
            private_groups=private_groups,
            labels=group_labels,
            outputs_per_label=per_group,
            plan=plan.privacy,
            variations=plan.variations,
            instruction=plan.instruction,
            generate=generate,
            embed=embed,
            rng=secret_numpy_rng(),
            report=say,
            variation_kinds=plan.variation_kinds,
            vote_space=plan.vote_space,
        )
    return out_texts, out_groups


def run_pe(
    texts: Sequence[Any],
    labels: Sequence[Any] | None,
    request: TextRequest,
    plan: PEPlan,
    loaded: Any,
    *,
    embed: Any,
    embedder_name: str,
    ledger: Any,
    source_name: str,
    rows: int,
    progress: bool,
    ray: Any = None,
) -> TextSynthesisResult:
    """Charge, embed the private texts once, evolve, complete.

    ``loaded`` (the public model), ``embed`` / ``embedder_name``
    (:func:`dpsynth.text.embeddings.load_embedder`) and ``rows`` (forward rows per batch) come from
    :func:`dpsynth.text.synthesis.prepare_generation`, before any charge. ``ray``: ``(workers,
    address)`` from :func:`dpsynth.text.ray_backend.check_ray_request` (checked before the charge):
    the public model's generations run on Ray actors, which see public prompts only; the ledger
    entry is the in-process one."""
    generator_model = {"name": loaded.name, "license": loaded.license, "source": loaded.source}
    decoding = decoding_record(request, plan, embedder_name)
    charge = TextChargePlan(
        mechanism=MECHANISM_NAME,
        event=plan.privacy.event,
        delta=request.budget.delta,
        sampling="none",
        parameters={**plan.privacy.describe(), **decoding},
    )
    with spend_before_reading(
        ledger, request.budget, charge, operation=OPERATION, generator_model=generator_model, source_name=source_name
    ) as (ledger, step):
        # ---- private data from here on
        text_list, label_list = read_texts(texts, labels)
        with ExitStack() as actors:
            decode = None
            if ray is not None:
                from dpsynth.text.ray_backend import public_decoder

                decode = actors.enter_context(public_decoder(loaded.model, ray[0], ray[1]))
            out_texts, out_groups = _evolve(text_list, label_list, request, plan, loaded, embed, rows, progress, decode)
        step.source_fingerprint = fingerprint_texts(text_list, label_list)
        step.outputs = {"kind": "synthetic_texts", "count": len(out_texts)}
    group_labels = list(request.outputs)
    return TextSynthesisResult(
        texts=out_texts,
        labels=None if request.label_set is None else [str(group_labels[g]) for g in out_groups],
        ledger=ledger if isinstance(ledger, Ledger) else ledger.load(),
        plan=plan.privacy,
        generator_model=generator_model,
        decoding=decoding,
        method="pe",
    )
