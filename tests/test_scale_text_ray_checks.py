"""Text on Ray: everything that can refuse a call is checked before the charge, in the library as
in the CLI -- an unreachable address, too few CPUs, and with ``device="cuda"`` too few GPUs (one
per decode actor; the local test cluster has none)."""

from __future__ import annotations

import os

import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dpsynth[ray]'); the Ray backend tests need it")

from dpsynth.accounting import Ledger, PrivacyBudget  # noqa: E402
from dpsynth.ray_support import RayConnectError, RayResourcesError  # noqa: E402
from dpsynth.text.privacy import PRIVACY_UNIT  # noqa: E402
from dpsynth.text.synthesis import generate  # noqa: E402
import dpsynth.text.ray_backend as rb  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXTS = [f"Visit {i}: discharged home." for i in range(12)]
SMALL = dict(epsilon=3.0, delta=1e-6, group_size=4, max_new_tokens=4, num_texts=2, progress=False,
             method="private_prediction")


def _ledger() -> Ledger:
    return Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="t")


class _NotRead(list):
    """Private texts that fail the test if anything reads them (the checks come first)."""

    def __iter__(self):
        raise AssertionError("the texts were read before the Ray checks")

    def __getitem__(self, item):
        raise AssertionError("the texts were read before the Ray checks")


@pytest.mark.parametrize("address, needle", [("127.0.0.1:9", "nothing answers at 127.0.0.1:9"),
                                             ("not an address", "Invalid address format")])
def test_library_refuses_an_unreachable_address_before_the_charge(address, needle):
    assert not ray.is_initialized()
    ledger = _ledger()
    with pytest.raises(RayConnectError, match=f"cannot connect to Ray at {address}.*{needle}"):
        generate(_NotRead(TEXTS), model="never-loaded", backend="ray", ray_address=address, ledger=ledger, **SMALL)
    assert ledger.entries == [] and ledger.epsilon_spent == 0
    assert not ray.is_initialized()


def test_a_local_cluster_the_call_started_is_shut_down_when_it_is_too_small():
    assert not ray.is_initialized()
    ledger = _ledger()
    with pytest.raises(RayResourcesError, match=r"need 4096 CPUs"):
        generate(_NotRead(TEXTS), model="never-loaded", backend="ray", ray_workers=4096, ledger=ledger, **SMALL)
    assert ledger.entries == [] and not ray.is_initialized()


@pytest.fixture(scope="module")
def cpu_cluster():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("kwargs, needle", [({"ray_workers": 3}, r"3 CPUs \(it has 2\)"),
                                            ({"ray_workers": 2, "device": "cuda"}, r"2 GPUs \(it has 0\)")])
def test_library_refuses_a_cluster_too_small_before_the_charge(cpu_cluster, kwargs, needle):
    ledger = _ledger()
    with pytest.raises(RayResourcesError, match=needle):
        generate(_NotRead(TEXTS), model="never-loaded", backend="ray", ledger=ledger, **kwargs, **SMALL)
    assert ledger.entries == []
    assert ray.is_initialized()  # a connection the call did not open is left alone


def test_cuda_workers_request_one_gpu_each(cpu_cluster, monkeypatch):
    """The options each actor is started with, through the library path (a recording stand-in)."""
    spec = rb.WorkerSpec(2, rb.worker_device("cuda:1"))
    assert (spec.device, spec.num_gpus) == ("cuda", 1) and rb.WorkerSpec(2).num_gpus == 0
    started = []

    class Recorder:
        @staticmethod
        def options(**options):
            class Remote:
                @staticmethod
                def remote(model_ref, threads, device):
                    started.append((options, device))
                    raise RuntimeError("stop here")

            return Remote

    monkeypatch.setattr(rb, "_actor_class", lambda ray_module: Recorder)
    with pytest.raises(RuntimeError, match="stop here"):
        rb.ray_decode_groups(torch.nn.Linear(2, 2), [], None, workers=spec)
    assert started == [({"num_cpus": 1, "num_gpus": 1}, "cuda")]


def test_a_gpu_actor_waits_for_a_gpu_on_a_cluster_without_one(cpu_cluster):
    """Ray itself holds the request: the GPU actor is never placed here, a CPU actor is."""
    model = torch.nn.Linear(2, 2)
    gpu = rb.start_workers(model, 1, num_gpus=1, device="cuda")[0]
    cpu = rb.start_workers(model, 1)[0]
    try:
        ready, _ = ray.wait([cpu.placement.remote()], timeout=60)
        assert ready and ray.get(ready[0]) == {"gpu_ids": [], "device": "cpu"}
        ready, _ = ray.wait([gpu.placement.remote()], timeout=2)
        assert not ready  # pending: no GPU to give it
    finally:
        ray.kill(gpu)
        ray.kill(cpu)


def test_cli_refuses_cuda_workers_without_gpus_before_the_charge(cpu_cluster, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from dpsynth.accounting.source_budget import find_source_budget
    from dpsynth.cli import app

    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET", raising=False)
    src = tmp_path / "visits.jsonl"
    src.write_text("".join(json.dumps({"body": t}) + "\n" for t in TEXTS), encoding="utf-8")
    assert CliRunner().invoke(app, ["budget", "init", str(src), "--epsilon", "10", "--delta", "1e-5"]).exit_code == 0
    spent = find_source_budget(src).load().entries
    res = CliRunner().invoke(app, ["text", "synth", str(src), "--text-field", "body", "-o", str(tmp_path / "out.jsonl"),
                                   "--model", str(tmp_path / "never-loaded"), "--epsilon", "3", "--method",
                                   "private_prediction", "--backend", "ray", "--device", "cuda", "--quiet"])
    assert res.exit_code == 2, res.output
    assert "2 GPUs (it has 0)" in " ".join(res.output.split()), res.output
    assert find_source_budget(src).load().entries == spent  # no charge
    assert not (tmp_path / "out.jsonl").exists()
