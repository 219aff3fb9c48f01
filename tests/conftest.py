"""Test-wide settings: offline, a private DPSYNTH_HOME, and a fixed small thread count."""

from __future__ import annotations

import os

# Set before transformers / huggingface_hub are imported anywhere: tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _dpsynth_home(tmp_path_factory: pytest.TempPathFactory):
    """Keep the source-fingerprint key of test runs out of the user's ~/.config."""
    home = tmp_path_factory.mktemp("dpsynth_home")
    old = os.environ.get("DPSYNTH_HOME")
    os.environ["DPSYNTH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("DPSYNTH_HOME", None)
    else:
        os.environ["DPSYNTH_HOME"] = old


@pytest.fixture(autouse=True, scope="session")
def _blas_threads():
    """One BLAS thread: numpy/scikit-learn on tiny inputs were up to 35x slower with more on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    # one thread: the test models are tiny, and on a busy 2-core machine more threads were up to
    # 30x slower (tests that need more set it themselves)
    torch.set_num_threads(1)
    yield
