"""Scale-out benchmark: peak RSS and wall time of one release per tabular backend (run by hand).

Data: a table drawn from a **public** Bayesian network (a fixed-seed random DAG: every column has
up to two earlier parents, conditional tables from a Dirichlet(0.5) prior), written once as
partitioned Parquet (one file per ``--part-rows`` rows) with its complete public metadata (types
and category lists / bounds; no row count, so every run also releases a DP row count). Half the
columns are text categories, half integers with public bounds.

Each measured run is a fresh subprocess that does the same release (``mst``, epsilon 1, a DP row
count, ``--sample-rows`` synthetic rows written to Parquet in chunks) on one backend:

* ``memory``: ``pandas.read_parquet`` of the whole directory, then ``Synthesizer.fit(df)``;
* ``stream``: ``backend="stream"`` (pyarrow chunks in this process);
* ``ray1`` / ``ray2``: ``backend="ray"`` on a local cluster started with 1 / 2 CPUs.

With ``--parts`` each run then writes the same number of rows again as a **partitioned release**
(``write_partitioned``: parts of ``--part-rows`` rows; sampled in this process for ``stream`` and
``memory``, one Ray task per part for ``ray1`` / ``ray2``), verifies it, and reports the
partitioned write time against the single-file write of the same process, and the peak RSS of
each write phase.

Peak RSS is sampled every 0.2 s over the process **and all its descendants** (Ray's raylet, GCS
and workers included) with psutil; wall time is the whole run including start-up. Ratios are
against the in-memory run of the same invocation.

Usage::

    python bench/scale.py generate --rows 10000000 --cols 20 --out /tmp/scale-bench/t10m
    python bench/scale.py compare --data /tmp/scale-bench/t10m --backends memory stream ray1 ray2
    python bench/scale.py compare --data /tmp/scale-bench/c200k --backends stream ray1 ray2 --parts \
        --sample-rows 1000000 --part-rows 250000 --iters 100
    python bench/scale.py text [--model PATH | --tiny]   # tokens/s: in-process vs 1 and 2 Ray actors
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

CITIES = ["Zürich", "東京", "São Paulo", "Kraków", "Québec", "Αθήνα", "Москва", "Lagos", "Lima", "Oslo",
          "Delhi", "Cairo"]


# ------------------------------------------------------------------------------------ the network
def public_network(cols: int, seed: int = 12345):
    """Column specs, parents and conditional tables of the public network (no private input)."""
    rng = np.random.default_rng(seed)
    specs, parents, cpts = [], [], []
    for j in range(cols):
        if j % 2 == 0:
            k = int(rng.integers(4, len(CITIES) + 1))
            specs.append({"name": f"c{j:02d}", "type": "categorical", "labels": [f"{c}-{j}" for c in CITIES[:k]]})
        else:
            k = int(rng.integers(6, 16))
            specs.append({"name": f"n{j:02d}", "type": "numerical", "k": k})
        par = sorted(rng.choice(j, size=min(j, int(rng.integers(0, 3))), replace=False).tolist()) if j else []
        parents.append(par)
        shape = tuple(len(specs[p]["labels"]) if "labels" in specs[p] else specs[p]["k"] for p in par) + (k,)
        cpts.append(rng.dirichlet(np.full(k, 0.5), size=int(np.prod(shape[:-1])) if par else 1).reshape(shape))
    return specs, parents, cpts


def metadata_for(specs) -> dict:
    cols = {}
    for s in specs:
        if s["type"] == "categorical":
            cols[s["name"]] = {"type": "categorical", "categories": s["labels"]}
        else:
            cols[s["name"]] = {"type": "numerical", "lower": 0, "upper": s["k"] - 1, "integer": True}
    return {"columns": cols}


def draw(specs, parents, cpts, n: int, rng: np.random.Generator):
    import pandas as pd

    codes = np.zeros((n, len(specs)), dtype=np.int64)
    for j, (par, cpt) in enumerate(zip(parents, cpts)):
        k = cpt.shape[-1]
        cond = cpt[tuple(codes[:, p] for p in par)] if par else np.broadcast_to(cpt[0], (n, k))
        cdf = np.cumsum(cond, axis=-1)
        codes[:, j] = np.minimum((cdf < rng.random(n)[:, None]).sum(axis=1), k - 1)
    out = {}
    for j, s in enumerate(specs):
        col = codes[:, j]
        if s["type"] == "categorical":
            out[s["name"]] = pd.Categorical.from_codes(col, s["labels"]).astype(object)
        else:
            out[s["name"]] = col
    frame = pd.DataFrame(out)
    miss = rng.random(n) < 0.01  # some missing values in the first text column
    frame.loc[miss, specs[0]["name"]] = None
    return frame


def generate(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs, parents, cpts = public_network(args.cols)
    (out / "metadata.json").write_text(json.dumps(metadata_for(specs), ensure_ascii=False, indent=1), encoding="utf-8")
    data = out / "data"
    data.mkdir(exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    done, part = 0, 0
    while done < args.rows:
        n = min(args.part_rows, args.rows - done)
        draw(specs, parents, cpts, n, rng).to_parquet(data / f"part-{part:05d}.parquet", index=False,
                                                     row_group_size=min(n, 250_000))
        done += n
        part += 1
        print(f"  wrote {done:,} / {args.rows:,} rows", file=sys.stderr, flush=True)
    size = sum(f.stat().st_size for f in data.glob("*.parquet"))
    print(json.dumps({"rows": args.rows, "cols": args.cols, "parts": part, "bytes": size, "seconds": round(time.time() - t0, 1)}))


# -------------------------------------------------------------------------------------- one run
class PeakRss:
    """Peak summed RSS of this process and its descendants, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self.proc, self.peak, self.interval = psutil.Process(), 0, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        total = 0
        for p in [self.proc] + self.proc.children(recursive=True):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def phase(self) -> int:
        """The peak since the last call (or the start), then start a new phase from the current RSS."""
        self._sample()
        peak, self.peak = self.peak, 0
        self._sample()
        return peak


def run_one(args) -> None:
    t0 = time.time()
    with PeakRss() as rss:
        from dpsynth.tabular.backends import write_streamed
        from dpsynth.tabular.synthesize import Synthesizer

        data = Path(args.data) / "data"
        meta = str(Path(args.data) / "metadata.json")
        backend = "ray" if args.backend.startswith("ray") else args.backend
        if backend == "ray":
            import ray

            ray.init(num_cpus=int(args.backend[3:]), include_dashboard=False, log_to_driver=False)
        synth = Synthesizer(epsilon=1.0, method="mst", metadata=meta, seed=0, progress=False, backend=backend,
                            method_options={"iters": args.iters})
        t_fit = time.time()
        if backend == "memory":
            import pandas as pd

            df = pd.read_parquet(data)
            synth.fit(df)
        else:
            synth.fit(data)
        fit_s = time.time() - t_fit
        out = Path(args.tmp) / f"out-{args.backend}.parquet"
        fit_peak = rss.phase()
        t_write = time.time()
        write_streamed(synth, out, args.sample_rows, force=True)
        write_s = time.time() - t_write
        extra = {}
        if args.parts:  # the same rows as a partitioned release, after the single file (same process, same model)
            from dpsynth.accounting import verify_text
            from dpsynth.tabular.output_parts import write_partitioned

            single_peak = rss.phase()
            parts_out = Path(args.tmp) / f"parts-{args.backend}.parquet"
            t_parts = time.time()
            paths = write_partitioned(synth, parts_out, args.sample_rows, force=True, part_rows=args.part_rows)
            parts_s = time.time() - t_parts
            parts_peak = rss.phase()
            t_verify = time.time()
            ok = verify_text(paths.ledger.read_text(), data_path=paths.data, card_path=paths.card).ok
            extra = {"single_write_peak_gb": round(single_peak / 2**30, 2), "parts_write_s": round(parts_s, 1),
                     "parts_write_peak_gb": round(parts_peak / 2**30, 2), "parts": len(list(parts_out.iterdir())),
                     "parts_vs_single_write": round(parts_s / write_s, 2),
                     "verify_s": round(time.time() - t_verify, 1), "verified": ok}
            fit_peak = max(fit_peak, single_peak, parts_peak, rss.phase())
        eps = synth.ledger.epsilon_spent
        if backend == "ray":
            ray.shutdown()
    print(json.dumps({"backend": args.backend, "wall_s": round(time.time() - t0, 1), "fit_s": round(fit_s, 1),
                      "write_s": round(write_s, 1), "peak_rss_gb": round(max(rss.peak, fit_peak) / 2**30, 2),
                      "epsilon_spent": eps, **extra}))


def compare(args) -> None:
    results = []
    for backend in args.backends:
        cmd = [sys.executable, __file__, "run", "--backend", backend, "--data", args.data, "--tmp", args.tmp,
               "--sample-rows", str(args.sample_rows), "--iters", str(args.iters),
               "--part-rows", str(args.part_rows)] + (["--parts"] if args.parts else [])
        print(f"running {backend} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            results.append({"backend": backend, "error": f"exit {proc.returncode}"})
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        print(json.dumps(res), file=sys.stderr, flush=True)
    base = next((r for r in results if r.get("backend") == "memory" and "error" not in r), None)
    print("| backend | wall s | fit s | write s | peak RSS GB | wall / memory | RSS / memory |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['backend']} | {r['error']} | | | | | |")
            continue
        ratio_w = f"{r['wall_s'] / base['wall_s']:.2f}" if base else "-"
        ratio_m = f"{r['peak_rss_gb'] / base['peak_rss_gb']:.2f}" if base else "-"
        print(f"| {r['backend']} | {r['wall_s']} | {r['fit_s']} | {r['write_s']} | {r['peak_rss_gb']} | {ratio_w} | {ratio_m} |")
    if args.parts:
        print()
        print("| backend | single file write s | partitioned write s | parts | partitioned / single (same process) "
              "| peak RSS GB during single write | during partitioned write | verify s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            if "error" not in r:
                print(f"| {r['backend']} | {r['write_s']} | {r['parts_write_s']} | {r['parts']} | "
                      f"{r['parts_vs_single_write']} | {r['single_write_peak_gb']} | {r['parts_write_peak_gb']} | "
                      f"{r['verify_s']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def text_bench(args) -> None:
    """Tokens/s of one DP text release: in-process vs Ray with 1 and 2 actors (CPU).

    Token slots = num_texts x max_new_tokens (an upper bound on sampled tokens; groups that stop
    early free their slots). Actor start-up (model replica load) is timed separately."""
    import torch

    from dpsynth.text.generate import generate
    from dpsynth.text.models import load_causal_lm
    from dpsynth.text.ray_backend import start_workers

    torch.set_num_threads(1)
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.tiny_model import build_tiny_model_dir

        model_spec = str(build_tiny_model_dir(Path(args.tmp) / "tiny"))
    else:
        model_spec = args.model
    loaded = load_causal_lm(model_spec, "cpu")
    texts = [f"Review {i}: the film was {'great' if i % 2 else 'dull'}, with a {'sharp' if i % 3 else 'slow'} plot."
             for i in range(args.texts)]
    kw = dict(epsilon=4.0, delta=1e-6, group_size=args.group_size, max_new_tokens=args.max_new_tokens,
              num_texts=args.num_texts, progress=False)
    slots = args.num_texts * args.max_new_tokens
    rows = []
    t = time.time()
    generate(texts, model=loaded, **kw)
    rows.append(("in-process", time.time() - t, 0.0))
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    for workers in (1, 2):
        t0 = time.time()
        pool = start_workers(loaded.model, workers)
        ray.get([a.pid.remote() for a in pool])
        startup = time.time() - t0
        t = time.time()
        generate(texts, model=loaded, backend="ray", ray_workers=pool, **kw)
        rows.append((f"ray, {workers} worker(s)", time.time() - t, startup))
        for a in pool:
            ray.kill(a)
    ray.shutdown()
    base = rows[0][1]
    print(f"model {loaded.name}; {args.texts} texts, {args.num_texts} outputs x {args.max_new_tokens} tokens")
    print("| engine | wall s | token slots/s | speed vs in-process | actor start-up s |")
    print("|---|---|---|---|---|")
    for name, wall, startup in rows:
        print(f"| {name} | {wall:.1f} | {slots / wall:.1f} | {base / wall:.2f} | {startup:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--rows", type=int, default=10_000_000)
    g.add_argument("--cols", type=int, default=20)
    g.add_argument("--part-rows", type=int, default=1_000_000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True)
    for name in ("run", "compare"):
        r = sub.add_parser(name)
        r.add_argument("--data", required=True)
        r.add_argument("--tmp", default="/tmp/scale-bench/out")
        r.add_argument("--sample-rows", type=int, default=1_000_000)
        r.add_argument("--iters", type=int, default=200)
        r.add_argument("--parts", action="store_true",
                       help="also write the rows as a partitioned release (parts sampled on Ray for ray1/ray2)")
        r.add_argument("--part-rows", type=int, default=250_000)
        if name == "run":
            r.add_argument("--backend", required=True)
        else:
            r.add_argument("--backends", nargs="+", default=["memory", "stream", "ray1", "ray2"])
            r.add_argument("--json")
    t = sub.add_parser("text")
    t.add_argument("--model", default=None)
    t.add_argument("--tiny", action="store_true", help="use the tiny test model (tests/tiny_model.py)")
    t.add_argument("--texts", type=int, default=128)
    t.add_argument("--num-texts", type=int, default=16)
    t.add_argument("--group-size", type=int, default=8)
    t.add_argument("--max-new-tokens", type=int, default=32)
    t.add_argument("--tmp", default="/tmp/scale-bench/out")
    args = ap.parse_args()
    if getattr(args, "tmp", None):
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
    {"generate": generate, "run": run_one, "compare": compare, "text": text_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
