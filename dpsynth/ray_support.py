"""Ray, optional: one place that imports it, for the tabular and the text backends.

``pip install 'dpsynth[ray]'`` installs Ray Data. Nothing here touches private data: addresses,
worker counts and the cluster's resources are public.
"""

from __future__ import annotations

import socket
from typing import Any

from dpsynth.errors import DpsynthError

#: Seconds to wait for a TCP answer from a ``host:port`` Ray address before refusing it (Ray's own
#: connection retries last minutes on an address where nothing answers).
PROBE_TIMEOUT_S = 5.0


class RayUnavailableError(DpsynthError, ImportError):
    """``backend='ray'`` was asked for but Ray is not installed."""


class RayConnectError(DpsynthError, ConnectionError):
    """The Ray cluster at the given address cannot be reached (refused before anything is spent)."""


class RayResourcesError(DpsynthError, ValueError):
    """The Ray cluster has fewer CPUs or GPUs than the workers asked for (refused before anything is spent)."""


def require_ray():
    """The ``ray`` module, or a clear error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayUnavailableError(
            "the Ray backend needs Ray Data, which is not installed: pip install 'dpsynth[ray]'"
        ) from exc
    return ray


def ensure_ray(address: str | None = None):
    """Connect to the Ray cluster at ``address`` (or start a local one) unless already connected."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    return ray


def probe_address(address: str | None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Refuse at once a ``host:port`` or ``ray://host:port`` address where nothing answers.

    ``None`` (a new local cluster) and ``auto`` are left to Ray, which fails fast on them.
    """
    if address is None or address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # Ray names what is wrong with the format itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayConnectError(
            f"cannot connect to Ray at {address}: nothing answers at {host}:{port} ({exc.strerror or exc}); "
            "nothing was read or spent"
        ) from exc


def connect(address: str | None, *, cpus: float = 0, gpus: float = 0, what: str = "the workers") -> tuple[Any, bool]:
    """``(ray, started)``: connected to ``address`` (or a new local cluster) with at least ``cpus``
    CPUs and ``gpus`` GPUs in the cluster; ``started`` when this call started the connection.

    Call it before any charge: a bad address (:class:`RayConnectError`) or a cluster too small for
    the workers (:class:`RayResourcesError`; actors would otherwise wait forever after the charge)
    is refused with nothing spent. A connection this call opened is shut down when it refuses.
    An existing connection is reused as it is (``address`` is then not consulted).
    """
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        probe_address(address)
        try:
            ensure_ray(address)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the same clear refusal
            raise RayConnectError(
                f"cannot connect to Ray{f' at {address}' if address else ''}: {exc}; nothing was read or spent"
            ) from exc
    resources = ray.cluster_resources()
    have_cpus, have_gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    short = [f"{need:g} {kind} (it has {have:g})" for need, have, kind in
             ((cpus, have_cpus, "CPUs"), (gpus, have_gpus, "GPUs")) if need > have]
    if short:
        if started:
            ray.shutdown()
        raise RayResourcesError(
            f"{what} need {' and '.join(short)} on the Ray cluster{f' at {address}' if address else ''}; "
            "refused before anything was read or spent (ask for fewer workers, or use a larger cluster)"
        )
    return ray, started
