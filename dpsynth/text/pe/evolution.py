"""The Private Evolution loop (Aug-PE) over public generators and a private vote histogram.

Privacy unit: one private text; the loop is (epsilon, delta)-DP under add-or-remove one text for
the plan it is given (proof and accounting: :mod:`dpsynth.text.pe.privacy`). The only private
inputs are ``private_embeddings`` and ``private_groups``; they reach the output only through
:func:`~dpsynth.text.pe.histogram.vote_histogram` followed by
:func:`~dpsynth.text.pe.histogram.noisy_histogram` -- once per iteration, ``plan.iterations`` times.
``generate`` (the public model) receives prompts built from the instruction, public labels and
candidates only (:mod:`dpsynth.text.pe.variation`).

One call::

    population = generate(initial prompts)                  # N_l * (1 + V) per label, public
    for t in 1..T:
        h~ = votes(private, population) + N(0, sigma^2)     # the DP step (centred cosine by default)
        w  = threshold(h~, H)
        if t == T: return the N_l highest-w candidates per label
        kept = N_l draws per label, proportional to w
        population = unique(kept) + V variations per draw  # public model
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dpsynth.text.embeddings import Embedder, embed_checked
from dpsynth.text.pe.histogram import (
    DEFAULT_VOTE_SPACE,
    check_vote_space,
    nearest_candidates,
    noisy_histogram,
    select_proportional,
    select_top,
    threshold_counts,
    vote_histogram,
)
from dpsynth.text.pe.privacy import PEPrivacyPlan
from dpsynth.text.pe.variation import DEFAULT_VARIATION_KINDS, VariationPlan, has_blank, initial_message, tidy

#: the public model: ``generate(messages, description, batch_keys=None)`` -> one generated text per
#: message, in order; ``batch_keys`` (public: label and variation kind) only group prompts into batches
PublicGenerate = Callable[..., list[str]]
#: observe(iteration, candidates, their group ids, thresholded noisy counts) -- released values only
Observer = Callable[[int, list[str], np.ndarray, np.ndarray], None]


@dataclass
class EvolutionTrace:
    """Public per-iteration facts (population sizes, how many noisy counts passed the threshold)."""

    population_sizes: list[int] = field(default_factory=list)
    above_threshold: list[int] = field(default_factory=list)


def _clean(texts: Sequence[str], fallback: Sequence[str]) -> list[str]:
    """Generated texts tidied (:func:`~dpsynth.text.pe.variation.tidy`: cut after the last
    complete sentence when the token limit stopped a text mid-sentence); an empty generation, or
    a fill-in answer that left a blank, is replaced by the text it varied (public)."""
    out = []
    for text, parent in zip(texts, fallback):
        text = tidy(text or "")
        out.append(text if text and not has_blank(text) else parent)
    return out


def run_private_evolution(
    *,
    private_embeddings: np.ndarray,
    private_groups: np.ndarray,
    labels: Sequence[str | None],
    outputs_per_label: Mapping[int, int],
    plan: PEPrivacyPlan,
    variations: int,
    instruction: str,
    generate: PublicGenerate,
    embed: Embedder,
    rng: np.random.Generator,
    report: Callable[[str], None] | None = None,
    initial_per_label: Mapping[int, int] | None = None,
    observe: Observer | None = None,
    variation_kinds: tuple[str, ...] = DEFAULT_VARIATION_KINDS,
    vote_space: str = DEFAULT_VOTE_SPACE,
) -> tuple[list[str], list[int], EvolutionTrace]:
    """Run Private Evolution; returns ``(texts, group id of each text, trace)``.

    ``labels[g]`` is the public label of group id ``g`` (``None`` when unlabelled);
    ``outputs_per_label[g]`` its public number of outputs. ``rng`` must come from
    :func:`dpsynth.randomness.secret_numpy_rng`: it draws the Gaussian noise (and the public
    selection and prompt randomness). ``initial_per_label[g]`` (public; default ``N_l * (1 + V)``)
    is the size of label ``g``'s initial population. ``observe(iteration, population, groups,
    weights)`` is called after every noisy histogram with the current candidates and their
    thresholded noisy counts -- post-processing of the released histogram, nothing else (for
    benchmarks and progress displays). ``variation_kinds`` (public) are the variation prompts a
    kept candidate's ``V`` variations cycle through (:data:`~dpsynth.text.pe.variation.VARIATION_KINDS`).
    ``vote_space`` (public) is where the votes measure nearness
    (:data:`~dpsynth.text.pe.histogram.VOTE_SPACES`; default centred on the label's candidates).
    """
    if variations < 1:
        raise ValueError("variations must be >= 1")
    check_vote_space(vote_space)
    say = report or (lambda _msg: None)
    trace = EvolutionTrace()
    variation_plan = VariationPlan(instruction=instruction, kinds=tuple(variation_kinds))
    groups = list(outputs_per_label)

    # initial population: N_l * (1 + V) fresh candidates per label, from the instruction alone
    messages, pop_groups = [], []
    for g in groups:
        count = outputs_per_label[g] * (1 + variations)
        if initial_per_label is not None:
            count = int(initial_per_label[g])
            if count < outputs_per_label[g]:
                raise ValueError(f"initial population of label group {g} ({count}) is smaller than its outputs")
        messages += [initial_message(instruction, labels[g])] * count
        pop_groups += [g] * count
    population = _clean(generate(messages, "PE initial candidates"), [""] * len(messages))
    population_groups = np.asarray(pop_groups, dtype=np.int64)

    for iteration in range(1, plan.iterations + 1):
        candidate_embeddings = embed_checked(embed, population)
        nearest = nearest_candidates(private_embeddings, private_groups, candidate_embeddings, population_groups,
                                     vote_space)
        counts = vote_histogram(nearest, len(population))
        noisy = noisy_histogram(counts, plan.noise_std, rng)  # the only release of private data
        del counts, nearest
        weights = threshold_counts(noisy, plan.threshold)
        if observe is not None:
            observe(iteration, list(population), population_groups.copy(), weights.copy())
        trace.population_sizes.append(len(population))
        trace.above_threshold.append(int((weights > 0).sum()))
        say(
            f"PE iteration {iteration}/{plan.iterations}: {len(population)} candidates, "
            f"{trace.above_threshold[-1]} above the noisy-count threshold"
        )
        if iteration == plan.iterations:
            final = select_top(weights, population_groups, outputs_per_label, rng)
            return [population[i] for i in final], [int(population_groups[i]) for i in final], trace
        drawn = select_proportional(weights, population_groups, outputs_per_label, rng)
        kept = sorted(set(int(i) for i in drawn))
        parents = [population[i] for i in drawn]
        parent_labels = [labels[int(population_groups[i])] for i in drawn]
        prompts, source, kinds = variation_plan.messages(parents, parent_labels, variations, rng)
        batch_keys = [(parent_labels[s], kind) for s, kind in zip(source, kinds)]  # public: speeds batching only
        varied = _clean(
            generate(prompts, f"PE variations {iteration}/{plan.iterations}", batch_keys=batch_keys),
            [parents[s] for s in source],
        )
        population = [population[i] for i in kept] + varied
        population_groups = np.concatenate(
            [population_groups[kept], np.asarray([int(population_groups[drawn[s]]) for s in source], dtype=np.int64)]
        )
    raise AssertionError("unreachable: plan.iterations >= 1")  # pragma: no cover
