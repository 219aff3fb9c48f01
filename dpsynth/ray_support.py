"""Ray, optional: one place that imports it, for the tabular and the text backends.

``pip install 'dpsynth[ray]'`` installs Ray Data. Nothing here touches private data.
"""

from __future__ import annotations

from dpsynth.errors import DpsynthError


class RayUnavailableError(DpsynthError, ImportError):
    """``backend='ray'`` was asked for but Ray is not installed."""


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
