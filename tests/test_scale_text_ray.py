"""Text groups decoded on a local 2-worker Ray cluster with the tiny model: same ledger as the
in-process run, every output present, and a dead worker fails the call with nothing released
while the charge stays."""

from __future__ import annotations

import os

import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dpsynth[ray]'); the Ray backend tests need it")

from dpsynth.text.engine import DecodeSettings, GroupPrompts  # noqa: E402
from dpsynth.text.synthesis import generate  # noqa: E402
from dpsynth.text.ray_backend import TextWorkerFailed, ray_decode_groups, shard_groups, start_workers  # noqa: E402
from tests.tiny_model import build_tiny_model_dir  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXTS = [f"Visit {i}: the patient was discharged home with instructions to rest." for i in range(24)]
SMALL = dict(epsilon=3.0, delta=1e-6, group_size=4, max_new_tokens=6, num_texts=4, progress=False,
             method="private_prediction")
CHARGE_KEYS = ("operation", "mechanism", "event", "stages", "sampling", "parameters", "charge", "provenance",
               "privacy_unit", "neighbouring_relation")


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _source_key_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "dpsynth_home"))


@pytest.fixture(scope="module")
def pool(tiny):
    """Two actors with the tiny model loaded once for the module (actor start-up imports torch)."""
    actors = start_workers(tiny[0], 2)
    ray.get([a.pid.remote() for a in actors])
    yield actors
    for actor in actors:
        ray.kill(actor)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny_ray"))
    yield AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    torch.set_num_threads(threads)


def _charges(ledger):
    return [{k: e.get(k) for k in CHARGE_KEYS} for e in ledger.entries if e["kind"] == "charge"]


def test_ray_text_has_the_in_process_ledger_and_every_output(tiny, pool):
    local = generate(TEXTS, model=tiny, **SMALL)
    on_ray = generate(TEXTS, model=tiny, backend="ray", ray_workers=pool, **SMALL)
    assert _charges(on_ray.ledger) == _charges(local.ledger)
    assert [e["kind"] for e in on_ray.ledger.entries] == ["charge", "completion"]
    assert on_ray.ledger.entries[1]["outputs"] == local.ledger.entries[1]["outputs"] == {"kind": "synthetic_texts", "count": 4}
    assert len(on_ray.texts) == 4 and all(isinstance(t, str) for t in on_ray.texts)


def test_shards_keep_order_and_cover_every_group():
    groups = [GroupPrompts([1], [[2]] * k) for k in (1, 5, 2, 2, 7, 1)]
    shards = shard_groups(groups, 2)
    assert [i for s in shards for i in s] == list(range(6)) and len(shards) == 2


def test_dead_worker_fails_the_call_with_nothing_returned(tiny, pool):
    model, tokenizer = tiny
    ray.kill(pool[1])  # one worker dies before its shard comes back (runs after the ledger test)
    settings = DecodeSettings(max_new_tokens=4, clip=1.0, divisor=2, temperature=1.0, top_k=10,
                              stop_token_ids=(), pad_token_id=0, max_rows=16)
    ids = tokenizer("hello there").input_ids
    groups = [GroupPrompts(list(ids), [list(ids), list(ids)]) for _ in range(4)]
    with pytest.raises(TextWorkerFailed, match="no texts are released"):
        ray_decode_groups(model, groups, settings, actors=pool)


def test_failed_ray_decoding_keeps_the_charge_and_releases_nothing(tiny, monkeypatch):
    import dpsynth.text.ray_backend as rb
    from dpsynth.accounting import Ledger, PrivacyBudget
    from dpsynth.text.privacy import PRIVACY_UNIT

    def dead_worker(*args, **kwargs):
        raise TextWorkerFailed("a Ray worker died during DP text decoding: no texts are released")

    monkeypatch.setattr(rb, "ray_decode_groups", dead_worker)
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="t")
    with pytest.raises(TextWorkerFailed):
        generate(TEXTS, model=tiny, backend="ray", ledger=ledger, **SMALL)
    assert [e["kind"] for e in ledger.entries] == ["charge", "completion"]  # charged, never refunded
    assert ledger.entries[1]["status"] == "failed"
    assert ledger.epsilon_spent > 0
