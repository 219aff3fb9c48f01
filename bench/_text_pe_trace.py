"""Private Evolution traced iteration by iteration: what each selection rule would emit after
every noisy histogram, scored against real held-out texts (``bench/text.py pe-trace``).

The private loop is the library's own :func:`dpsynth.text.pe.evolution.run_private_evolution`
with the calibrated plan and OS-entropy noise; the trace only reads what the loop releases
(candidates and their thresholded noisy counts) through its ``observe`` hook. The held-out test
texts are used for scoring only, never for selection. No ledger is written: this is a benchmark
of the loop's settings (iterations, variations, initial population, final selection), and the
sigma printed is the one ``dpsynth.text.generate(method="pe")`` would charge for the same
(epsilon, delta, iterations).

Rules scored at each iteration ``t`` (what the loop would return if ``T`` were ``t``):

* ``top``: the ``N_l`` highest noisy counts per label (the loop's final rule);
* ``prop``: ``N_l`` draws per label proportional to the thresholded noisy counts, duplicates kept
  (the rule the loop uses between iterations);
* ``draw``: ``N_l`` distinct candidates per label drawn proportionally without replacement.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def save_pool(path: Path, population, groups, labels, args) -> None:
    """One round's candidates (public texts) and their label ids, with the corpus split they came from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "corpus": args.corpus, "seed": args.seed, "private_per_label": args.private_per_label,
        "test_per_label": args.test_per_label, "labels": list(labels),
        "texts": list(population), "groups": [int(g) for g in groups],
    }))


def select_distinct_proportional(weights, groups, per_group, rng) -> np.ndarray:
    """``per_group[g]`` distinct candidates of group ``g`` drawn in proportion to ``weights``
    (without replacement; zero-weight candidates only fill what is left)."""
    out = []
    for g, count in per_group.items():
        cols = np.flatnonzero(groups == g)
        w = weights[cols] + 1e-9
        out.append(cols[rng.choice(cols.size, size=min(count, cols.size), replace=False, p=w / w.sum())])
    return np.concatenate(out)


def run_pe_trace(args, loaded, instruction: str, split, labels: list[str], delta: float, top_k: int) -> None:
    from _text_eval import MiniLMEmbedder, evaluate, pe_embedder_spec

    from dpsynth.evaluate.text_metrics import embedding_coverage, mauve_score
    from dpsynth.randomness import secret_numpy_rng
    from dpsynth.text.embeddings import load_embedder
    from dpsynth.text.pe.evolution import run_private_evolution
    from dpsynth.text.pe.generator import EngineGenerator
    from dpsynth.text.pe.histogram import nearest_candidates, select_proportional, select_top
    from dpsynth.text.pe.privacy import calibrate_pe

    M = args.per_label
    evaluator = MiniLMEmbedder()
    test_embeddings = evaluator(split.test_texts)
    plan = calibrate_pe(args.epsilon, delta, args.iterations,
                        None if args.threshold_sigmas is None else args.threshold_sigmas
                        * calibrate_pe(args.epsilon, delta, args.iterations).noise_multiplier)
    print(f"pe-trace: epsilon={args.epsilon:g}, delta={delta:g}, T={args.iterations}, V={args.variations}, "
          f"sigma={plan.noise_multiplier:.3f}, threshold={plan.threshold:.2f}, initial per label="
          f"{args.initial_per_label or M * (1 + args.variations)}, outputs per label={M}, top-k={top_k}, "
          f"temperature={args.temperature}, variation kinds={args.variation_kinds}, vote space={args.vote_space}", flush=True)
    rows: list[tuple] = []

    def score(name: str, texts: list[str], text_labels: list[str], note: str = "") -> None:
        acc = evaluate(evaluator, texts, text_labels, split.test_texts, split.test_labels, test_embeddings)
        synth = evaluator([t if t.strip() else "." for t in texts])
        mauve = mauve_score(test_embeddings, synth)["mauve"]
        coverage = embedding_coverage(test_embeddings, synth)
        words = float(np.mean([len(t.split()) for t in texts]))
        distinct = len(set(texts))
        rows.append((name, acc.tfidf, acc.minilm, mauve, coverage, words, distinct, note))
        print(f"{name:>22}: TF-IDF {acc.tfidf:.3f}  MiniLM {acc.minilm:.3f}  MAUVE {mauve:.3f}  coverage "
              f"{coverage:.3f}  words {words:.1f}  distinct {distinct}  {note}", flush=True)

    few = [(t, lab) for lab in labels for t in [x for x, y in zip(split.train_texts, split.train_labels) if y == lab][:M]]
    score("real", [t for t, _ in few], [lab for _, lab in few])

    embed, embedder_name = load_embedder(pe_embedder_spec())
    print(f"PE votes with: {embedder_name}", flush=True)
    label_index = {lab: i for i, lab in enumerate(labels)}
    private_groups = np.asarray([label_index[y] for y in split.train_labels], dtype=np.int64)
    start = time.perf_counter()
    private_embeddings = embed(list(split.train_texts))
    print(f"embedded {len(split.train_texts)} private texts in {time.perf_counter() - start:.0f}s", flush=True)
    generate = EngineGenerator(loaded, max_new_tokens=args.tokens, temperature=args.temperature, top_k=top_k,
                               max_rows=64 if loaded.device == "cpu" else 1024, progress=False)
    per_group = {g: M for g in range(len(labels))}
    initial = None if not args.initial_per_label else {g: args.initial_per_label for g in per_group}
    rng = np.random.default_rng(args.seed + 1000)  # selection in the trace (post-processing)
    clock = {"start": time.perf_counter()}

    def observe(iteration, population, groups, weights):
        elapsed = time.perf_counter() - clock["start"]
        if args.save_pools:  # the round's public candidates, for `select-probe`
            save_pool(Path(args.save_pools) / f"round{iteration}.json", population, groups, labels, args)
        if iteration == 1:  # the initial population, no vote: a random N_l per label
            pick = np.concatenate([rng.choice(np.flatnonzero(groups == g), size=M, replace=False) for g in per_group])
            score("t=0 initial", [population[i] for i in pick], [labels[groups[i]] for i in pick], f"{elapsed:.0f}s")
            # non-private oracle on the same population: each private text's nearest candidate, top N_l
            nearest = nearest_candidates(private_embeddings, private_groups, embed(population), groups, args.vote_space)
            counts = np.bincount(nearest, minlength=len(population)).astype(float)
            top = select_top(counts, groups, per_group, rng)
            score("t=0 oracle top", [population[i] for i in top], [labels[groups[i]] for i in top], "no noise")
        for rule, select in (("top", select_top), ("prop", select_proportional), ("draw", select_distinct_proportional)):
            chosen = select(weights, groups, per_group, rng)
            score(f"t={iteration} {rule}", [population[i] for i in chosen], [labels[groups[i]] for i in chosen],
                  f"{elapsed:.0f}s, {int((weights > 0).sum())}/{len(population)} above H")
        if iteration == args.iterations:
            for g, lab in enumerate(labels):
                best = np.flatnonzero(groups == g)[np.argsort(-weights[groups == g])[:3]]
                for i in best:
                    print(f"    {lab} [{weights[i]:.0f}]: {population[i][:140]!r}", flush=True)
        clock["start"] = time.perf_counter()

    run_private_evolution(
        private_embeddings=private_embeddings, private_groups=private_groups, labels=labels,
        outputs_per_label=per_group, plan=plan, variations=args.variations, instruction=instruction,
        generate=generate, embed=embed, rng=secret_numpy_rng(), initial_per_label=initial, observe=observe,
        report=lambda msg: print(msg, flush=True),
        variation_kinds=tuple(k.strip() for k in args.variation_kinds.split(",") if k.strip()),
        vote_space=args.vote_space,
    )
    print("\n| set | TF-IDF+LR | MiniLM+LR | MAUVE | coverage | words | distinct | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for name, tfidf, minilm, mauve, coverage, words, distinct, note in rows:
        print(f"| {name} | {tfidf:.3f} | {minilm:.3f} | {mauve:.3f} | {coverage:.3f} | {words:.1f} | {distinct} | {note} |")
