"""Vote and selection rules of PE's last round, compared on saved candidate pools
(``bench/text.py select-probe``).

Input: the rounds a ``pe-trace --save-pools DIR`` run wrote (each round's public candidates and
their labels). For every round file, every vote rule and every selection rule, the probe draws
the vote histogram's Gaussian noise ``--repeats`` times at the sigma the library calibrates for
``(--epsilon, delta, --iterations)`` -- the same noise one PE round of that plan adds -- and
scores the ``N_l`` selected candidates per label against the real held-out texts (MiniLM+LR
accuracy, MAUVE, coverage). ``exact`` rows use the noise-free votes (not private: the best a
rule can do on that pool). This is a benchmark of post-processing rules and vote shapes, not a
DP release: the private texts are read without a ledger, and only scores are printed.

Vote rules (each private text votes among the candidates of its own label):

* ``nn``: one vote for the nearest candidate (cosine) -- the library's rule, L2 sensitivity 1;
* ``knnK``: weight ``1/K`` to each of the ``K`` nearest -- L2 sensitivity ``1/sqrt(K)``, so the
  noise std is ``sigma/sqrt(K)`` and the threshold ``2 sigma/sqrt(K)``;
* ``centred``: the nearest candidate after subtracting the label's candidate mean (public) from
  both sides -- a hubness correction; sensitivity 1;
* ``centred_all``: the same with the mean of all labels' candidates;
* ``csls``: cosine minus the candidate's mean cosine to its 10 nearest other candidates of the
  label (public; penalises candidates in dense regions of the pool); sensitivity 1;
* ``whiten``: centred, then scaled by the candidates' top-64 principal components' inverse
  standard deviations (public); sensitivity 1;
* ``xlabel`` / ``xlabel_raw``: each private text looks for its nearest candidate among *all*
  labels' candidates (``xlabel``: after subtracting the mean of all candidates; ``xlabel_raw``:
  plain cosine) and votes for it only when that candidate carries the text's own label (a text
  nearest to another label's candidate casts no vote). Still at most one vote per text:
  sensitivity 1. It favours candidates that are nearer their own label's texts than any other
  label's candidate is -- label-discriminative ones.

Selection rules (post-processing of the thresholded noisy counts and public candidates):

* ``top``: the ``N_l`` highest counts (the library's final rule);
* ``draw``: ``N_l`` distinct candidates drawn in proportion to the counts;
* ``prop``: ``N_l`` draws in proportion, duplicates kept;
* ``strat``: the label's candidates cut into ``N_l / 5`` k-means clusters (public); each
  cluster's share of ``N_l`` is proportional to its summed noisy counts (clipped at 0, no
  threshold); within a cluster the highest counts first;
* ``random``: ``N_l`` candidates uniformly (no vote).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

VOTES = ("nn", "knn4", "knn16", "centred", "centred_all", "csls", "whiten", "xlabel", "xlabel_raw")
SELECTIONS = ("top", "draw", "prop", "strat", "random")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def vote_counts(rule: str, private: np.ndarray, private_groups: np.ndarray, cand: np.ndarray,
                cand_groups: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact vote histogram of ``rule`` and its L2 sensitivity."""
    counts = np.zeros(len(cand))
    if rule.startswith("xlabel"):
        c = _unit(cand)
        mean_all = c.mean(0, keepdims=True) if rule == "xlabel" else np.zeros((1, c.shape[1]))
        nearest = np.argmax(_unit(_unit(private) - mean_all) @ _unit(c - mean_all).T, axis=1)
        own = cand_groups[nearest] == private_groups
        np.add.at(counts, nearest[own], 1.0)
        return counts, 1.0
    if rule == "centred_all":
        mean_all = _unit(cand).mean(0, keepdims=True)
    k = int(rule[3:]) if rule.startswith("knn") else 1
    for g in np.unique(cand_groups):
        rows, cols = np.flatnonzero(private_groups == g), np.flatnonzero(cand_groups == g)
        p, c = private[rows], cand[cols]
        if rule == "centred":
            mean = c.mean(0, keepdims=True)
            p, c = _unit(p - mean), _unit(c - mean)
        elif rule == "centred_all":
            p, c = _unit(_unit(p) - mean_all), _unit(_unit(c) - mean_all)
        elif rule == "whiten":
            c = _unit(c)
            mean = c.mean(0, keepdims=True)
            _, s, vt = np.linalg.svd(c - mean, full_matrices=False)
            basis = vt[:64] / (s[:64, None] / np.sqrt(len(c)) + 1e-3)
            p, c = (_unit(p) - mean) @ basis.T, (c - mean) @ basis.T
        sim = _unit(p) @ _unit(c).T
        if rule == "csls":
            cc = _unit(c) @ _unit(c).T
            np.fill_diagonal(cc, -np.inf)
            sim = sim - np.sort(cc, axis=1)[:, -10:].mean(1)[None, :]
        if k == 1:
            np.add.at(counts, cols[np.argmax(sim, axis=1)], 1.0)
        else:
            nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            np.add.at(counts, cols[nearest.ravel()], 1.0 / k)
    return counts, 1.0 / np.sqrt(k)


def select(rule: str, weights: np.ndarray, noisy: np.ndarray, groups: np.ndarray, per_label: int,
           cand: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from _text_pe_trace import select_distinct_proportional
    from sklearn.cluster import KMeans

    from dpsynth.text.pe.histogram import select_proportional, select_top

    per_group = {int(g): per_label for g in np.unique(groups)}
    if rule == "top":
        return select_top(weights, groups, per_group, rng)
    if rule == "prop":
        return select_proportional(weights, groups, per_group, rng)
    if rule == "draw":
        return select_distinct_proportional(weights, groups, per_group, rng)
    out = []
    for g in per_group:
        cols = np.flatnonzero(groups == g)
        if rule == "random":
            out.append(rng.choice(cols, size=per_label, replace=False))
        else:  # strat
            m = max(2, per_label // 5)
            cluster = KMeans(n_clusters=m, n_init=2, random_state=0).fit_predict(cand[cols])
            mass = np.array([max(noisy[cols][cluster == c].sum(), 0.0) for c in range(m)])
            share = mass / mass.sum() * per_label if mass.sum() > 0 else np.full(m, per_label / m)
            quota = np.floor(share).astype(int)
            for c in np.argsort(-(share - quota))[: per_label - quota.sum()]:
                quota[c] += 1
            chosen: list[int] = []
            order = np.argsort(-noisy[cols])
            spill = 0
            for c in np.argsort(-share):
                members = [i for i in order if cluster[i] == c]
                take = quota[c] + spill
                chosen += members[:take]
                spill = max(0, take - len(members))
            taken = set(chosen)
            rest = [i for i in order if i not in taken]
            chosen += rest[: per_label - len(chosen)]
            out.append(cols[np.asarray(chosen[:per_label])])
    return np.concatenate(out)


def run_select_probe(args, split, labels: list[str], delta: float) -> None:
    from _text_eval import MiniLMEmbedder, embedding_accuracy, second_embedder

    from dpsynth.evaluate.text_metrics import embedding_coverage, mauve_score
    from dpsynth.text.pe.privacy import calibrate_pe

    evaluator = MiniLMEmbedder()
    start = time.perf_counter()
    test = evaluator(split.test_texts)
    private = evaluator(list(split.train_texts))
    private_groups = np.asarray([labels.index(y) for y in split.train_labels])
    mpnet = second_embedder()
    mpnet_test = mpnet(split.test_texts) if mpnet else None
    print(f"embedded {len(private)} private and {len(test)} test texts in {time.perf_counter() - start:.0f}s", flush=True)
    sigma = calibrate_pe(args.epsilon, delta, args.iterations).noise_multiplier
    print(f"noise multiplier {sigma:.3f} (epsilon {args.epsilon:g}, delta {delta:g}, {args.iterations} rounds); "
          f"{args.repeats} noise draws per cell", flush=True)
    votes = args.votes or list(VOTES)
    selections = args.selections or list(SELECTIONS)
    rows = []
    for pool_file in args.pools:
        pool = json.loads(Path(pool_file).read_text())
        if pool["labels"] != labels:
            raise SystemExit(f"{pool_file}: labels {pool['labels']} differ from the corpus {labels}")
        texts, groups = pool["texts"], np.asarray(pool["groups"])
        cand = evaluator(texts)
        cand_mpnet = mpnet(texts) if mpnet else None
        name = Path(pool_file).parent.name + "/" + Path(pool_file).stem
        for vote in votes:
            counts, sensitivity = vote_counts(vote, private, private_groups, cand, groups)
            std = sigma * sensitivity
            for selection in selections:
                for noise in ("noisy", "exact"):
                    if noise == "exact" and selection == "random":
                        continue
                    scores = []
                    for r in range(args.repeats if noise == "noisy" else 1):
                        rng = np.random.default_rng(1000 * r + 7)
                        noisy = counts + (rng.normal(0, std, counts.shape) if noise == "noisy" else 0.0)
                        threshold = 2 * std if noise == "noisy" else 0.5 / (1 if vote[:3] != "knn" else int(vote[3:]))
                        weights = np.where(noisy >= threshold, np.maximum(noisy, 0), 0.0)
                        chosen = select(selection, weights, noisy, groups, args.per_label, cand, rng)
                        emb = cand[chosen]
                        acc = embedding_accuracy(emb, [labels[groups[i]] for i in chosen], test, split.test_labels)
                        second = mauve_score(mpnet_test, cand_mpnet[chosen])["mauve"] if mpnet else float("nan")
                        scores.append((acc, mauve_score(test, emb)["mauve"], embedding_coverage(test, emb),
                                       len(set(chosen.tolist())), second))
                    s = np.asarray(scores)
                    row = (name, vote, selection, noise, *s.mean(0), s[:, 1].std())
                    rows.append(row)
                    print(f"{name} {vote:>8} {selection:>6} {noise}: MiniLM {row[4]:.3f}  MAUVE {row[5]:.3f} "
                          f"(sd {row[9]:.3f})  coverage {row[6]:.3f}  distinct {row[7]:.0f}  MAUVE(mpnet) {row[8]:.3f}",
                          flush=True)
    print("\n| pool | vote | selection | noise | MiniLM+LR | MAUVE (sd) | MAUVE (mpnet) | coverage | distinct |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, vote, selection, noise, acc, mauve, cov, distinct, second, sd in rows:
        print(f"| {name} | {vote} | {selection} | {noise} | {acc:.3f} | {mauve:.3f} ({sd:.3f}) | {second:.3f} | {cov:.3f} "
              f"| {distinct:.0f} |")
