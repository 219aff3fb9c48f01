"""Time one method's fit alone on the encoded UCI Adult table (run by hand, not in CI).

Unlike ``bench/tabular.py`` (the whole ``Synthesizer``, privacy noise from OS entropy), this calls
``get_method(name).calibrate(...)`` and ``fit(codes, plan, rng)`` directly with a *seeded* numpy
generator, so two code versions can be compared on the same noise draw (a benchmark only: the
library always passes an OS-entropy generator). Prints fit CPU seconds (one thread), wall seconds
and the average 1/2/3-way TVD of ``len(train)`` sampled rows; ``--profile FILE`` writes cProfile
stats.

Usage::

    python bench/tabular_fit.py aim --epsilon 1 --seed 0
    python bench/tabular_fit.py aim --options '{"final_iters": 3000}'
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tabular as adult_bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--options", default="{}", help="method options as JSON")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--wheel", default=None)
    args = parser.parse_args()

    from dpsynth.tabular.encoding import TableEncoder
    from dpsynth.tabular.methods import get_method
    from dpsynth.tabular.methods.base import EncodedDomain
    from dpsynth.tabular.quality import average_tvd
    from dpsynth.tabular.schema import resolve_schema

    train, _ = adult_bench.load_adult(adult_bench.find_wheel(args.wheel))
    encoder = TableEncoder.from_schema(resolve_schema(train, adult_bench.ADULT_METADATA))
    codes = encoder.encode(train)
    domain = EncodedDomain(tuple(encoder.columns), tuple(int(s) for s in encoder.sizes))
    method = get_method(args.method, **json.loads(args.options))
    plan = method.calibrate(args.epsilon, args.delta, domain, float(len(train)))
    profiler = cProfile.Profile() if args.profile else None
    c0, t0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    model = method.fit(codes, plan, np.random.default_rng(args.seed), progress=False)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    synth = model.sample(len(codes), np.random.default_rng(1))
    tvd = {k: round(average_tvd(codes, synth, domain.sizes, k), 4) for k in (1, 2, 3)}
    print(json.dumps({"method": args.method, "epsilon": args.epsilon, "options": json.loads(args.options),
                      "seed": args.seed, "fit_cpu_s": round(cpu, 1), "fit_wall_s": round(wall, 1), "tvd": tvd,
                      "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
