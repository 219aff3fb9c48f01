"""The evaluation checklist for synthetic *text*, end to end and offline (a few minutes on CPU).

Data: a small public toy corpus of labelled customer-support tickets generated from templates
in this file (no download). We pretend it is sensitive:

1. split it at random into a "private" half and a real holdout half;
2. plant canaries in the private half: an in-distribution prefix (the start of a real ticket)
   plus a rare random suffix; each canary is planted with probability 1/2 (the canary file is
   private: it says which were planted);
3. generate DP synthetic tickets with ``dpsynth.text.generate`` (SmolLM2-135M, installed locally)
   and save the release (JSONL + ledger + card);
4. evaluate: self-BLEU / distinct-n (synthetic only, publishable), n-gram novelty, embedding
   coverage and the MAUVE-style score (MiniLM embeddings when installed), a TF-IDF classifier
   trained on synthetic and tested on real (TSTR vs TRTR), canary scan, exact / near-duplicate
   overlap, and the canary membership audit; writes the JSON, the offline HTML report and the
   card's ``evals`` / ``release_decision``;
5. the same checks on a deliberately non-private "generator" that copies its input, released
   under the same epsilon claim: the canary scan and the audit must reject it;
6. a hybrid training set with ``mix``.

Usage::

    python examples/evaluate_text_checklist.py [--out DIR] [--epsilon 4] [--canaries 60] [--force]

Measured here (2 shared CPU cores, heavily loaded): about 15 minutes, almost all of it DP
generation with SmolLM2-135M; the evaluation itself takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LABELS = ["billing", "technical"]
TEMPLATES = {
    "billing": ["I was charged twice for my {plan} plan this {period}, please refund the extra payment.",
                "My invoice for {period} shows the {plan} plan but I downgraded last {period}.",
                "Can you explain the extra fee on my {plan} subscription bill?",
                "The payment for my {plan} plan failed although my card is valid."],
    "technical": ["The {app} app crashes every time I open the {screen} screen.",
                  "After the last update the {app} app cannot sync my {screen} data.",
                  "I get an error code when I log in to the {app} app on my {device}.",
                  "The {screen} page in the {app} app loads forever on my {device}."],
}
FILLERS = {"plan": ["basic", "premium", "family", "student"], "period": ["month", "week", "quarter"],
           "app": ["mobile", "desktop", "web"], "screen": ["settings", "profile", "calendar", "photos"],
           "device": ["phone", "tablet", "laptop"]}


def toy_corpus(n: int, seed: int) -> list[dict]:
    """Public toy tickets: a template per label with random fillers."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        label = LABELS[int(rng.integers(len(LABELS)))]
        template = TEMPLATES[label][int(rng.integers(len(TEMPLATES[label])))]
        text = template.format(**{k: v[int(rng.integers(len(v)))] for k, v in FILLERS.items()})
        records.append({"text": text, "label": label})
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("evaluate_text_checklist_out"))
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--texts-per-label", type=int, default=5)
    parser.add_argument("--canaries", type=int, default=60,
                        help="canaries drawn (about half planted); the audit's epsilon lower bound cannot "
                             "exceed about 2.4 with 60 and about 4.8 with 600, even against a copying generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    from dpsynth.card import build_card
    from dpsynth.evaluate import evaluate_files, mix_files
    from dpsynth.evaluate.contamination import make_canaries, plant_canaries, save_canaries
    from dpsynth.release import write_release
    from dpsynth.text import generate

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = toy_corpus(400, args.seed)
    rng = np.random.default_rng(args.seed)
    member = rng.random(len(corpus)) < 0.5
    private = [r for r, m in zip(corpus, member) if m]
    holdout = [r for r, m in zip(corpus, member) if not m]
    canaries = make_canaries([r["text"] for r in private], args.canaries, seed=args.seed + 1, prefix_words=6)
    planted_texts = plant_canaries([r["text"] for r in private], canaries, seed=args.seed + 2)
    known = {r["text"]: r["label"] for r in private}
    planted = [{"text": t, "label": known.get(t, LABELS[int(rng.integers(len(LABELS)))])} for t in planted_texts]
    write_jsonl(args.out / "private.jsonl", planted)
    write_jsonl(args.out / "holdout.jsonl", holdout)
    save_canaries(args.out / "canaries.json", canaries)
    print(f"[1-2] {len(private)} private tickets (+{sum(c.member for c in canaries)} planted canaries), "
          f"{len(holdout)} holdout")

    print(f"[3] generating DP synthetic tickets (epsilon={args.epsilon}) ...")
    result = generate([r["text"] for r in planted], labels=[r["label"] for r in planted], label_set=LABELS,
                      epsilon=args.epsilon, delta=1e-6, num_texts=args.texts_per_label,
                      instruction="Write a short customer-support ticket.", max_new_tokens=32,
                      seed=args.seed, source_name="toy-tickets")
    synth_path = args.out / "synthetic.jsonl"
    result.save(synth_path, force=args.force)
    print(f"    wrote {synth_path}; ledger epsilon = {result.ledger.epsilon_spent:.3f}")
    for text in result.texts[:3]:
        print("    e.g.", text[:100].replace("\n", " "))

    print("[4] evaluating ...")
    evaluation, outputs = evaluate_files(synth_path, args.out / "holdout.jsonl", args.out / "private.jsonl",
                                         label_field="label", canaries_path=args.out / "canaries.json",
                                         force=args.force, seed=args.seed, progress=True)
    _summary("DP release", evaluation.report)
    print(f"    report: {outputs.json}, {outputs.html}; card: {outputs.card}")

    print("[5] a non-private generator (copies its input), same epsilon claim ...")
    leaky_path = args.out / "nonprivate_copy.jsonl"
    write_release(leaky_path, lambda tmp: write_jsonl(tmp, planted), result.ledger,
                  build_card(result.ledger, generator_model={"family": "copy (NOT private)"}), force=args.force)
    leaky, _ = evaluate_files(leaky_path, args.out / "holdout.jsonl", args.out / "private.jsonl",
                              label_field="label", canaries_path=args.out / "canaries.json",
                              force=args.force, seed=args.seed, embedder="hashing")
    _summary("non-private copy", leaky.report)

    print("[6] hybrid: holdout-sized real set plus 20% synthetic ...")
    info = mix_files(args.out / "private.jsonl", synth_path, 0.2, args.out / "hybrid.jsonl",
                     force=args.force, seed=args.seed, replace=True)
    print(f"    wrote {info['data']} synthetic_ratio={info['synthetic_ratio']:.3f}")

    ok = (evaluation.report["privacy_audit"]["epsilon_lb"] <= result.ledger.epsilon_spent
          and evaluation.report["contamination"]["canaries"]["leaked_members"] == 0
          and leaky.decision == "reject")
    print("\nchecklist:", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


def _summary(name: str, report: dict) -> None:
    div, shift = report.get("diversity", {}), report.get("distribution_shift", {})
    audit, canary = report.get("privacy_audit", {}), report.get("contamination", {}).get("canaries", {})
    tstr = report.get("utility", {}).get("tstr", {})
    print(f"    {name}: decision={report['release_decision']['decision']} self-BLEU={div.get('self_bleu')!s:.5} "
          f"coverage={shift.get('embedding_coverage')!s:.5} MAUVE={shift.get('mauve')!s:.5} "
          f"TSTR={tstr.get('tstr')!s:.5} TRTR={tstr.get('trtr')!s:.5} "
          f"canaries leaked={canary.get('leaked_members')} audit AUC={audit.get('auc')!s:.5} "
          f"eps_lb={audit.get('epsilon_lb')!s:.5}")
    for reason in report["release_decision"]["reasons"]:
        print(f"      - {reason}")


def cli(argv: list[str] | None = None) -> int:
    """``main`` with a clear message instead of a traceback when outputs already exist."""
    try:
        return main(argv)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
