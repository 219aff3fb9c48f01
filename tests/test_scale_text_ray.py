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
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET", raising=False)  # the CLI tests charge a real source budget


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


PE_SMALL = dict(epsilon=3.0, delta=1e-6, method="pe", iterations=2, variations=1, max_new_tokens=6, num_texts=2,
                progress=False)


def _hashing_embed(texts):
    """A deterministic offline embedder (character 3-grams hashed into 64 dims)."""
    import zlib

    import numpy as np

    out = np.zeros((len(texts), 64))
    for row, text in enumerate(texts):
        for i in range(max(1, len(text) - 2)):
            out[row, zlib.crc32(text[i:i + 3].encode()) % 64] += 1.0
    return out


def test_pe_on_ray_sends_public_prompts_only_and_has_the_in_process_ledger(tiny, pool, monkeypatch):
    import dpsynth.text.ray_backend as rb

    secret = "zqxjv"
    private = [f"{secret}{i} the patient went home after rest." for i in range(12)]
    labels = ["pos", "neg"] * 6
    sent = []
    real_decode = rb.ray_decode_groups

    def recording(model, groups, settings, **kwargs):
        sent.extend(groups)
        return real_decode(model, groups, settings, **kwargs)

    monkeypatch.setattr(rb, "ray_decode_groups", recording)
    common = dict(labels=labels, label_set=["pos", "neg"], model=tiny, embedder=_hashing_embed, **PE_SMALL)
    local = generate(private, **common)
    on_ray = generate(private, backend="ray", ray_workers=pool, **common)
    assert _charges(on_ray.ledger) == _charges(local.ledger)
    assert [e["kind"] for e in on_ray.ledger.entries] == ["charge", "completion"]
    assert on_ray.labels == ["pos", "pos", "neg", "neg"] and len(on_ray.texts) == 4
    # initial pool 2 x (1 + V) per label, then one round of 2 x V variations per label
    assert len(sent) == 2 * 2 * 2 + 2 * 2 * 1
    assert all(g.member_ids == [] for g in sent)  # no private row is ever shipped
    prompts = [tiny[1].decode(g.public_ids) for g in sent]
    assert not any(secret in p for p in prompts) and all("The text must be" in p for p in prompts)
    assert all(ray.get([a.pid.remote() for a in pool]))  # the caller's actors are left running


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


def test_failed_ray_decoding_in_pe_keeps_the_charge_and_releases_nothing(tiny, monkeypatch):
    import dpsynth.text.ray_backend as rb
    from dpsynth.accounting import Ledger, PrivacyBudget
    from dpsynth.text.privacy import PRIVACY_UNIT

    def dead_worker(*args, **kwargs):
        raise TextWorkerFailed("a Ray worker died during DP text decoding: no texts are released")

    monkeypatch.setattr(rb, "ray_decode_groups", dead_worker)
    monkeypatch.setattr(rb, "start_workers", lambda model, workers=2, **kwargs: [])  # no actor needed
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="t")
    with pytest.raises(TextWorkerFailed):
        generate(TEXTS, model=tiny, backend="ray", ray_workers=2, ledger=ledger, embedder=_hashing_embed, **PE_SMALL)
    assert [e["kind"] for e in ledger.entries] == ["charge", "completion"]  # charged, never refunded
    assert ledger.entries[1]["status"] == "failed"
    assert 2.99 < ledger.epsilon_spent <= 3.0  # the calibrated PE charge (sigma within the budget)


# ---- the CLI on Ray, and a worker that dies in the middle of its shard

def _write_jsonl(path, n=len(TEXTS)):
    import json

    path.write_text("".join(json.dumps({"body": t}) + "\n" for t in TEXTS[:n]), encoding="utf-8")
    return path


def _cli_synth(model_dir, src, out, *extra):
    from typer.testing import CliRunner

    from dpsynth.cli import app

    args = ["text", "synth", str(src), "--text-field", "body", "-o", str(out), "--model", str(model_dir),
            "--epsilon", "3", "--delta", "1e-6", "--group-size", "4", "--max-new-tokens", "6", "--num-texts", "4",
            "--instruction", "Write one visit note.", "--quiet", *map(str, extra)]
    return CliRunner().invoke(app, args)


def _budget_init(src, epsilon="10"):
    from typer.testing import CliRunner

    from dpsynth.cli import app

    res = CliRunner().invoke(app, ["budget", "init", str(src), "--epsilon", epsilon, "--delta", "1e-5"])
    assert res.exit_code == 0, res.output


@pytest.fixture
def idle_cluster(pool):
    """Both CPUs free for the actors a CLI run starts: the module's pool (last used above) is
    stopped, else a run's second actor would wait for a CPU forever."""
    import time

    for actor in pool:
        ray.kill(actor)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) >= 2


@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_ray_cli")
    tiny[0].save_pretrained(path)
    tiny[1].save_pretrained(path)
    return path


def test_cli_ray_backend_writes_a_verified_release_with_the_in_process_ledger(tiny_dir, tmp_path, idle_cluster):
    from typer.testing import CliRunner

    from dpsynth.cli import app

    src = _write_jsonl(tmp_path / "visits.jsonl")
    _budget_init(src)
    local = _cli_synth(tiny_dir, src, tmp_path / "local.jsonl", "--method", "private_prediction")
    assert local.exit_code == 0, local.output
    assert "Charged epsilon=3" in local.output
    on_ray = _cli_synth(tiny_dir, src, tmp_path / "ray.jsonl", "--method", "private_prediction",
                        "--backend", "ray", "--ray-workers", "2")
    assert on_ray.exit_code == 0, on_ray.output
    assert "Backend: ray, 2 decode workers" in on_ray.output
    assert len((tmp_path / "ray.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    ledger_file = tmp_path / "ray.jsonl.ledger.json"
    verified = CliRunner().invoke(app, ["ledger", "verify", str(ledger_file)])
    assert verified.exit_code == 0, verified.output
    from dpsynth.accounting import Ledger

    def events(path):
        ledger = Ledger.load(path)
        return _charges(ledger), [{k: v for k, v in e.items() if k in ("kind", "status", "outputs")}
                                  for e in ledger.entries]

    assert events(ledger_file) == events(tmp_path / "local.jsonl.ledger.json")
    assert ray.is_initialized()  # the module's cluster was not shut down by the command


def test_cli_pe_on_ray_writes_a_verified_release_with_the_in_process_ledger(tiny_dir, tmp_path, idle_cluster):
    from dpsynth.accounting import Ledger
    from dpsynth.accounting.verify import verify_text

    src = _write_jsonl(tmp_path / "visits.jsonl")
    _budget_init(src, epsilon="20")
    pe = ["--method", "pe", "--iterations", "2", "--variations", "1", "--embedder", tiny_dir]
    local = _cli_synth(tiny_dir, src, tmp_path / "local.jsonl", *pe)
    assert local.exit_code == 0, local.output
    on_ray = _cli_synth(tiny_dir, src, tmp_path / "ray.jsonl", *pe, "--backend", "ray", "--ray-workers", "2")
    assert on_ray.exit_code == 0, on_ray.output
    assert "Backend: ray, 2 decode workers" in on_ray.output and "Method: pe" in on_ray.output
    assert len((tmp_path / "ray.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    ledger_file = tmp_path / "ray.jsonl.ledger.json"
    assert verify_text(ledger_file.read_text(encoding="utf-8")).ok
    assert _charges(Ledger.load(ledger_file)) == _charges(Ledger.load(tmp_path / "local.jsonl.ledger.json"))


def test_cli_names_the_extra_when_ray_is_missing(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    src = _write_jsonl(tmp_path / "visits.jsonl")
    monkeypatch.setattr(builtins, "__import__", no_ray)
    res = _cli_synth(tmp_path / "no-model", src, tmp_path / "out.jsonl", "--method", "private_prediction",
                     "--backend", "ray")
    assert res.exit_code == 2 and "pip install 'dpsynth[ray]'" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["visits.jsonl"]


@ray.remote
class DiesAfterItsFirstGroup:
    """Test-only decode actor: decodes its first group for real, then its process exits (os._exit),
    so the death happens mid-run, after private prompts reached it, every time."""

    def __init__(self, model):
        self.model = model.eval()

    def decode(self, groups, settings):
        from dpsynth.randomness import secret_torch_generator
        from dpsynth.text.engine import decode_groups

        torch.set_num_threads(1)
        decode_groups(self.model, groups[:1], settings, generator=secret_torch_generator(torch.device("cpu")),
                      progress=False)
        os._exit(1)


def test_cli_worker_killed_mid_run_fails_with_no_release_and_the_charge_stays(tiny_dir, tmp_path, monkeypatch,
                                                                             idle_cluster):
    import dpsynth.text.ray_backend as rb
    from dpsynth.accounting.source_budget import find_source_budget

    real_start = rb.start_workers

    def one_healthy_one_dying(model, workers=2, **kwargs):  # injected here only: the CLI cannot reach it
        assert workers == 2
        return real_start(model, 1, **kwargs) + [DiesAfterItsFirstGroup.options(num_cpus=1).remote(model)]

    monkeypatch.setattr(rb, "start_workers", one_healthy_one_dying)
    src = _write_jsonl(tmp_path / "visits.jsonl")
    _budget_init(src)
    res = _cli_synth(tiny_dir, src, tmp_path / "out.jsonl", "--method", "private_prediction", "--backend", "ray")
    assert res.exit_code == 2 and "no texts are released" in res.output, res.output
    left = [p.name for p in tmp_path.iterdir() if "out.jsonl" in p.name]
    assert left == [".out.jsonl.lock"]  # only the (empty) reservation lock: no data, ledger, card or temp file
    entries = find_source_budget(src).load().entries
    assert [e["kind"] for e in entries][-2:] == ["charge", "completion"], (res.output, entries)
    assert entries[-1]["status"] == "failed"  # charged, never refunded
    assert entries[-2]["charge"]["epsilon"] == pytest.approx(3.0)
