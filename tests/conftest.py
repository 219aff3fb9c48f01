"""Test-wide settings: offline, a private DPSYNTH_HOME, and a fixed small thread count."""

from __future__ import annotations

import os

# Set before transformers / huggingface_hub are imported anywhere: tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The synth commands refuse to run without a source budget (`dpsynth budget init`); tests that are
# not about source budgets run as with --no-source-budget. tests/test_source_budget*.py unset it.
os.environ.setdefault("DPSYNTH_SOURCE_BUDGET", "off")

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


# --------------------------------------------------------------------------------------------
# Shared fixtures (use these instead of repeating the setup in each test file)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def source_key_home(tmp_path, monkeypatch):
    """A fresh, empty dpsynth home for one test: ``DPSYNTH_HOME`` points into ``tmp_path`` and
    ``DPSYNTH_SOURCE_KEY`` / ``DPSYNTH_SIGNING_KEY`` are unset, so the owner's source and signing
    keys are created there (never in ~/.config)."""
    home = tmp_path / "dpsynth_home"
    monkeypatch.setenv("DPSYNTH_HOME", str(home))
    monkeypatch.delenv("DPSYNTH_SOURCE_KEY", raising=False)
    monkeypatch.delenv("DPSYNTH_SIGNING_KEY", raising=False)
    return home


@pytest.fixture
def one_torch_thread():
    """Run one test with one torch thread (tiny models are fastest single-threaded on a busy
    machine); the previous setting is restored afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The folder of the tiny random-weight Llama of :mod:`tests.tiny_model`, built once per run."""
    pytest.importorskip("transformers")
    from tests.tiny_model import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """``(model, tokenizer)`` loaded from :func:`tiny_model_dir` (eval mode), shared by the session.

    Tests must not modify the model in place.
    """
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    finally:
        torch.set_num_threads(before)
    return model, tokenizer
