"""Library and dependency versions recorded in every ledger entry."""

from __future__ import annotations

import importlib.metadata
import platform

_PACKAGES = ("dpsynth", "dp-accounting", "numpy", "torch", "transformers", "opacus", "pandas")


def dependency_versions() -> dict[str, str]:
    """Installed versions of dpsynth and the packages its mechanisms depend on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
