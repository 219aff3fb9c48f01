"""Decode text on Ray actors, one model replica per actor: private prediction's disjoint groups,
or Private Evolution's public candidates.

Privacy unit: one private text; the guarantee is the in-process one (:mod:`dpsynth.text.privacy`).
Groups are disjoint and each output depends on one group only, so they compose in parallel and
can be decoded anywhere. What stays in the driver (:func:`dpsynth.text.synthesis.generate`, private prediction):
calibration, the one ledger charge (made **before** any private text is read or sent to a
worker), the fresh secret grouping key, the partition, the tokenised prompts and the ledger
completion. What moves to the actors: decoding only. Each actor draws its sampling noise from
its own OS-entropy generator (:func:`dpsynth.randomness.secret_torch_generator`, created inside
the actor), never from a seed sent by the driver.

Failure: if an actor dies (node lost, process killed, out of memory) the call raises
:class:`TextWorkerFailed` and returns nothing: no partial set of texts is released and the
ledger entry stays charged without a completion. Spending the budget of a failed run is the safe
choice -- private texts were already sent to workers and may have influenced outputs that were
observed (logs, memory), so the charge is never refunded.

Private Evolution (:func:`public_decoder`): the actors write the candidates and their variations
from **public prompts only** (instruction, public label, candidates selected through the noisy
vote); the private texts, their embeddings, the votes and the Gaussian noise never leave the
driver. The actors are started once per call and keep their replica across iterations. A dead
actor raises :class:`TextWorkerFailed` as above: nothing is released, the charge stays (the
private texts had already been read).

Sharding: groups are cut into ``workers`` contiguous shards with about equal numbers of forward
rows (public prompt + members); the outputs are gathered back in the driver's order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dpsynth.errors import DpsynthError
from dpsynth.text.engine import DecodeSettings, GroupPrompts


class TextWorkerFailed(DpsynthError, RuntimeError):
    """A Ray worker died during decoding; nothing was released and the charge stays."""


@dataclass(frozen=True)
class WorkerSpec:
    """``count`` decode actors to start, each with one CPU and, on ``device="cuda"``, one GPU."""

    count: int
    device: str = "cpu"  # "cpu" | "cuda": where each actor decodes

    @property
    def num_gpus(self) -> int:
        return 1 if self.device == "cuda" else 0


def worker_device(device: Any = None) -> str:
    """The device type of the decode actors: ``cpu`` (default) or ``cuda`` (one GPU per actor).

    Parsed, not checked against this machine: the driver needs no GPU; the cluster's GPUs are
    checked by :func:`check_ray_request`.
    """
    import torch

    if device is None:
        return "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: {exc}") from exc
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"Ray decode actors run on 'cpu' or 'cuda', not {device!r}")
    return kind


def check_ray_request(backend: str, method: str, workers: Any, address: str | None,
                      device: Any = None) -> tuple[Any, str | None]:
    """``(workers, address)`` for a valid Ray request, connected; raises before any charge otherwise.

    Public inputs only. In order: the backend and method; Ray importable
    (:class:`~dpsynth.ray_support.RayUnavailableError`); ``workers`` a positive integer or a list
    of actors; then, for a number of workers, the connection to ``address`` (or a new local
    cluster; :class:`~dpsynth.ray_support.RayConnectError`) and one CPU per worker plus one GPU
    per worker on ``device="cuda"`` in the cluster (:class:`~dpsynth.ray_support.RayResourcesError`).
    A number of workers comes back as a :class:`WorkerSpec`.
    """
    from dpsynth.ray_support import connect, require_ray

    if backend != "ray":
        raise ValueError(f"backend must be 'memory' or 'ray', got {backend!r}")
    if method not in ("private_prediction", "pe"):
        raise ValueError(f"the Ray backend decodes private_prediction or pe; got method {method!r}")
    require_ray()
    if isinstance(workers, bool) or (isinstance(workers, int) and workers < 1):
        raise ValueError(f"ray_workers must be a positive integer or a list of actors, got {workers!r}")
    if not isinstance(workers, int):
        return workers, address  # running actors: already connected and placed
    spec = WorkerSpec(int(workers), worker_device(device))
    connect(address, cpus=spec.count, gpus=spec.count * spec.num_gpus,
            what=f"{spec.count} decode worker(s) on {spec.device}")
    return spec, address


def shard_groups(groups: Sequence[GroupPrompts], workers: int) -> list[list[int]]:
    """Contiguous shards of group indices with about equal forward rows (public: group sizes
    are private, but the shards never leave the library; only their outputs, in order, do)."""
    workers = max(1, min(int(workers), len(groups)))
    total = sum(g.rows for g in groups)
    shards: list[list[int]] = [[] for _ in range(workers)]
    done = 0
    for index, group in enumerate(groups):
        target = min(workers - 1, int(done * workers / max(total, 1)))
        shards[target].append(index)
        done += group.rows
    return [s for s in shards if s]


def _actor_class(ray: Any):
    @ray.remote
    class DecodeWorker:
        """One model replica; decodes the groups it is sent with its own entropy generator."""

        def __init__(self, model: Any, threads: int | None = None, device: str | None = None) -> None:
            import torch

            if threads:
                torch.set_num_threads(int(threads))
            if device == "cuda":  # this actor's one GPU (Ray sets CUDA_VISIBLE_DEVICES); in-process dtype
                from dpsynth.text.models import default_dtype

                model = model.to(device="cuda", dtype=default_dtype("cuda"))
            self.model = model.eval()

        def decode(self, groups: list[GroupPrompts], settings: DecodeSettings) -> list[list[int]]:
            from dpsynth.randomness import secret_torch_generator
            from dpsynth.text.engine import decode_groups, model_device

            generator = secret_torch_generator(model_device(self.model))  # noise drawn here, in the actor
            return decode_groups(self.model, groups, settings, generator=generator, progress=False)

        def pid(self) -> int:
            import os

            return os.getpid()

        def placement(self) -> dict[str, Any]:
            """Where this actor runs: its GPU ids (from Ray) and its model's device."""
            from dpsynth.text.engine import model_device

            return {"gpu_ids": [str(g) for g in ray.get_gpu_ids()], "device": str(model_device(self.model))}

    return DecodeWorker


def actor_options(num_gpus: float = 0.0) -> dict[str, float]:
    """The Ray resources each decode actor requests: one CPU, and ``num_gpus`` GPUs (1 on ``cuda``)."""
    return {"num_cpus": 1, "num_gpus": num_gpus}


def start_workers(model: Any, workers: int = 2, *, address: str | None = None, num_gpus: float = 0.0,
                  threads: int | None = 1, device: str | None = None) -> list[Any]:
    """``workers`` Ray actors, each holding one replica of ``model`` (public weights).

    ``device="cuda"``: each actor moves its replica to its GPU (ask ``num_gpus=1`` so that Ray
    gives it one; :class:`WorkerSpec` does)."""
    from dpsynth.ray_support import ensure_ray

    ray = ensure_ray(address)
    cls = _actor_class(ray)
    model_ref = ray.put(model)
    return [cls.options(**actor_options(num_gpus)).remote(model_ref, threads, device) for _ in range(int(workers))]


def ray_decode_groups(
    model: Any,
    groups: Sequence[GroupPrompts],
    settings: DecodeSettings,
    *,
    workers: int | Sequence[Any] = 2,
    address: str | None = None,
    actors: Sequence[Any] | None = None,
) -> list[list[int]]:
    """Like :func:`dpsynth.text.engine.decode_groups`, on Ray actors; outputs in input order.

    ``actors`` (or ``workers`` given as a list of actors) reuses workers from
    :func:`start_workers`, which keep their model replica loaded; else ``workers`` actors (a
    number, or a :class:`WorkerSpec` with their device and GPUs) are started and stopped here. Raises :class:`TextWorkerFailed` if any worker dies; nothing is returned then.
    """
    from dpsynth.ray_support import ensure_ray

    ray = ensure_ray(address)
    with actor_pool(model, workers if actors is None else actors, address) as pool:
        shards = shard_groups(groups, len(pool))
        futures = [pool[i].decode.remote([groups[j] for j in shard], settings) for i, shard in enumerate(shards)]
        try:
            parts = ray.get(futures)
        except ray.exceptions.RayError as exc:  # a dead actor, a failed task, lost objects, out of memory
            raise TextWorkerFailed(
                f"a Ray worker failed during DP text decoding ({type(exc).__name__}): no texts are released, and "
                "the ledger keeps the charge (the private texts had already been read); the worker's own "
                "traceback is not shown, since it ran on private texts"
            ) from None
    results: list[list[int]] = [[] for _ in groups]
    for shard, part in zip(shards, parts):
        for index, ids in zip(shard, part):
            results[index] = ids
    return results


@contextmanager
def actor_pool(model: Any, workers: Any, address: str | None = None) -> Iterator[list[Any]]:
    """The decode actors of one call: ``workers`` as a list of running actors is used as it is
    (and left running); a number or a :class:`WorkerSpec` starts that many here, killed on exit."""
    from dpsynth.ray_support import ensure_ray

    ray = ensure_ray(address)
    if isinstance(workers, (WorkerSpec, int)):
        spec = workers if isinstance(workers, WorkerSpec) else WorkerSpec(int(workers))
        pool, own = start_workers(model, spec.count, address=address, num_gpus=spec.num_gpus, device=spec.device), True
    else:
        pool, own = list(workers), False
    try:
        yield pool
    finally:
        if own:
            for actor in pool:
                ray.kill(actor)


@contextmanager
def public_decoder(model: Any, workers: Any, address: str | None = None) -> Iterator[Any]:
    """``decode(groups, settings)`` on Ray actors for one call (Private Evolution's public prompts).

    ``workers``: as in :func:`actor_pool`; the actors keep their replica across the call's
    iterations. Outputs come back in input order; a dead actor raises :class:`TextWorkerFailed`.
    """
    with actor_pool(model, workers, address) as pool:
        yield lambda groups, settings: ray_decode_groups(model, groups, settings, actors=pool)
