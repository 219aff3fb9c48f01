"""Public rules for B, the method and PE's schedule; label-aware prompts; output formats (no model needed)."""

from __future__ import annotations

import inspect

import pytest

from dpsynth.accounting.calibration import exponential_epsilon_per_step
from dpsynth.text.auto import (
    MAX_AUTO_GROUP_SIZE,
    MAX_SCHEDULE_SIGMA,
    MIN_AUTO_GROUP_SIZE,
    PE_SCHEDULE_CPU,
    PE_SCHEDULE_GPU,
    PE_SCHEDULE_SHORT,
    TARGET_CLIP,
    auto_group_size,
    choose_method,
    pe_schedule,
)
from dpsynth.text.privacy import calibrate_text_mechanism
from dpsynth.text.result import OutputFormatError, output_format


def test_auto_group_size_is_a_function_of_public_inputs_only():
    params = set(inspect.signature(auto_group_size).parameters)
    assert params == {"epsilon", "delta", "max_new_tokens", "temperature", "num_texts_total"}
    assert auto_group_size(3.0, 1e-6, 32, 1.0, 100) == auto_group_size(3.0, 1e-6, 32, 1.0, 100)


@pytest.mark.parametrize("epsilon,tokens", [(1.0, 32), (3.0, 32), (3.0, 64), (10.0, 32), (10.0, 128)])
def test_auto_group_size_reaches_the_target_clip_with_the_smallest_b(epsilon, tokens):
    size = auto_group_size(epsilon, 1e-6, tokens, 1.0, 10)
    assert MIN_AUTO_GROUP_SIZE <= size <= MAX_AUTO_GROUP_SIZE
    clip = calibrate_text_mechanism(epsilon, 1e-6, size, tokens, 1.0).clip
    eps_tok = exponential_epsilon_per_step(epsilon, 1e-6, tokens)
    if size < MAX_AUTO_GROUP_SIZE and size > MIN_AUTO_GROUP_SIZE:
        assert clip >= TARGET_CLIP * 0.999
        assert eps_tok * (size - 1) * 1.0 / 2 < TARGET_CLIP  # one smaller B would miss the target


def test_auto_group_size_shrinks_with_budget_and_is_capped_by_compute():
    sizes = [auto_group_size(e, 1e-6, 32, 1.0, 10) for e in (1.0, 3.0, 10.0)]
    assert sizes[0] > sizes[1] > sizes[2] or sizes[2] == MIN_AUTO_GROUP_SIZE
    assert auto_group_size(0.3, 1e-6, 256, 1.0, 10) == MAX_AUTO_GROUP_SIZE
    assert auto_group_size(0.3, 1e-6, 256, 1.0, 4000) < MAX_AUTO_GROUP_SIZE  # many outputs: fewer rows each


def test_auto_method_rule_is_pe_on_every_device():
    """docs/text.md: "auto" is PE whatever the device (measured: docs/text-bench.md, fifth round)."""
    assert choose_method("auto") == "pe"
    assert choose_method("pe") == "pe"
    assert choose_method("private_prediction") == "private_prediction"
    with pytest.raises(ValueError):
        choose_method("magic")


def test_pe_schedule_by_device_and_budget_and_callers_values_win():
    from dpsynth.text.pe.privacy import calibrate_pe

    assert pe_schedule("cpu", 3.0, 1e-6, None, None) == PE_SCHEDULE_CPU == (6, 3)
    assert pe_schedule("cuda", 3.0, 1e-6, None, None) == PE_SCHEDULE_GPU == (10, 4)
    # epsilon 3: 6 and 10 rounds stay within the noise bound; epsilon 1 and 2 do not
    assert calibrate_pe(3.0, 1e-6, 10).noise_multiplier <= MAX_SCHEDULE_SIGMA
    assert calibrate_pe(3.0, 1e-6, 6).noise_multiplier <= MAX_SCHEDULE_SIGMA
    assert calibrate_pe(1.0, 1e-6, 6).noise_multiplier > MAX_SCHEDULE_SIGMA
    assert calibrate_pe(2.0, 1e-6, 6).noise_multiplier > MAX_SCHEDULE_SIGMA
    for device in ("cpu", "cuda"):
        assert pe_schedule(device, 1.0, 1e-6, None, None) == PE_SCHEDULE_SHORT == (3, 3)
        assert pe_schedule(device, 2.0, 1e-6, None, None) == PE_SCHEDULE_SHORT
        assert pe_schedule(device, 10.0, 1e-6, None, None) == (PE_SCHEDULE_GPU if device == "cuda" else PE_SCHEDULE_CPU)
    # a larger delta is a larger budget: 6 rounds at epsilon 2 fit when delta is 1e-3
    assert calibrate_pe(2.0, 1e-3, 6).noise_multiplier <= MAX_SCHEDULE_SIGMA
    assert pe_schedule("cpu", 2.0, 1e-3, None, None) == PE_SCHEDULE_CPU
    # the caller's values win, one at a time
    assert pe_schedule("cuda", 3.0, 1e-6, 2, None) == (2, 4)
    assert pe_schedule("cpu", 3.0, 1e-6, None, 7) == (6, 7)
    assert pe_schedule("cpu", 1.0, 1e-6, None, 7) == (3, 7)
    assert pe_schedule("cuda", 1.0, 1e-6, 1, 1) == (1, 1)


def test_plan_summary_reports_the_schedule_it_will_use():
    """What the CLI prints before generating is what the call runs (iterations, variations,
    sigma calibrated for those iterations)."""
    from dpsynth.text.pe.privacy import calibrate_pe
    from dpsynth.text.synthesis import plan_summary

    summary = plan_summary(epsilon=3.0, delta=1e-6, method="auto", num_texts_total=10, device="cpu")
    assert (summary["method"], summary["iterations"], summary["variations"]) == ("pe", 6, 3)
    assert summary["noise_multiplier"] == calibrate_pe(3.0, 1e-6, 6).noise_multiplier
    summary = plan_summary(epsilon=1.0, delta=1e-6, method="auto", num_texts_total=10, device="cpu")
    assert (summary["iterations"], summary["variations"]) == (3, 3)
    assert summary["noise_multiplier"] == calibrate_pe(1.0, 1e-6, 3).noise_multiplier
    summary = plan_summary(epsilon=3.0, delta=1e-6, method="pe", num_texts_total=10, device="cpu",
                           iterations=10, variations=4)
    assert (summary["iterations"], summary["variations"]) == (10, 4)
    assert summary["noise_multiplier"] == calibrate_pe(3.0, 1e-6, 10).noise_multiplier


def test_label_goes_into_private_and_public_prompts(tmp_path):
    """docs/text.md: the default template names the public label in both prompts, one way
    ("Here is a <label> example: ..." / "Write one <label> example. ..."); the example only in the private one."""
    from transformers import AutoTokenizer

    from dpsynth.text.prompts import PromptEncoder, PromptTemplate
    from tests.tiny_model import build_tiny_model_dir

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model_dir(tmp_path / "tiny"))
    encoder = PromptEncoder(tokenizer, PromptTemplate(instruction="Write a review."), 32)
    public = tokenizer.decode(encoder.public_ids("negative"))
    private = tokenizer.decode(encoder.private_ids(["the film was dull"], "negative")[0])
    assert "Here is a negative example:\nthe film was dull\n\nWrite another one like it:" in private
    assert "Write one negative example." in public
    assert "the film was dull" not in public and "positive" not in public + private
    unlabelled = tokenizer.decode(encoder.public_ids(None)) + tokenizer.decode(encoder.private_ids(["x"], None)[0])
    assert "negative" not in unlabelled and "{label}" not in unlabelled


def test_template_refuses_a_label_missing_from_one_prompt():
    from dpsynth.text.prompts import PromptTemplate

    with pytest.raises(ValueError, match="both prompts"):
        PromptTemplate(labelled_public_suffix="Reply with the text only.")
    with pytest.raises(ValueError, match="example"):
        PromptTemplate(labelled_public_suffix="{label} {example}")
    # a label line carries the label into both prompts
    PromptTemplate(label_line="Label: {label}", labelled_private_suffix="{example}", labelled_public_suffix="Go.")


def test_output_format_from_suffix():
    assert output_format("a.csv") == "csv" and output_format("a.JSONL") == "jsonl"
    with pytest.raises(OutputFormatError, match=".jsonl.*or .csv"):
        output_format("a.txt")


def test_plan_summary_reports_b_t_c_for_private_prediction_and_sigma_for_pe():
    from dpsynth.text.synthesis import plan_summary

    pp = plan_summary(epsilon=3.0, method="private_prediction", num_texts_total=20, max_new_tokens=32)
    assert pp["group_size"] == auto_group_size(3.0, 1e-6, 32, 1.0, 20)
    assert pp["clip"] == pytest.approx(calibrate_text_mechanism(3.0, 1e-6, pp["group_size"], 32, 1.0).clip)
    pe = plan_summary(epsilon=3.0, method="pe", num_texts_total=20, iterations=4)
    assert pe["method"] == "pe" and pe["iterations"] == 4 and pe["noise_multiplier"] > 0


def test_documented_auto_group_size_examples():
    """docs/text.md: at delta=1e-6, tau=1, T=32: epsilon 1 -> 26, 3 -> 10, 10 -> 4."""
    assert [auto_group_size(e, 1e-6, 32, 1.0, 100) for e in (1.0, 3.0, 10.0)] == [26, 10, 4]


def test_cpu_threads_follow_free_cpus_and_are_restored(monkeypatch):
    import torch

    from dpsynth.text.runtime import cpu_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("DPSYNTH_NUM_THREADS", "3")
    with cpu_threads("cpu") as used:
        assert used == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
