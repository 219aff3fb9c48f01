"""Public rules that pick parameters a user did not set: the group size ``B``, the method, and
Private Evolution's rounds and variations.

All rules are functions of public inputs only (budget, decoding parameters, the number of
outputs the caller asked for, the device) -- never of the private texts or their number.

``B`` ("auto", the default of private prediction)
    The clip is ``C = eps_tok * B * tau / 2`` with ``eps_tok`` the per-token budget of
    (epsilon, delta) over ``T`` tokens (:mod:`dpsynth.text.privacy`). InvisibleInk (Vinod et
    al. 2025, Fig. 3) measured that at ``C ~ 1`` logit more than 95% of the coordinates of
    ``phi_i - phi_pub`` are left unclipped, i.e. the aggregate is close to the non-private mean,
    while at ``C ~ 0.1`` the text is essentially the public model's (docs/text-bench.md: ε = 1 and 3
    with B = 8 gave C = 0.3-0.9 and chance-level utility). So the rule targets
    :data:`TARGET_CLIP` = 1.0 logit: ``B = ceil(2 * TARGET_CLIP / (eps_tok * tau))``, at least
    :data:`MIN_AUTO_GROUP_SIZE` and at most ``min(MAX_AUTO_GROUP_SIZE, ROWS_PER_STEP_BUDGET //
    num_texts)`` -- the cap bounds compute, since every synthetic token costs ``B + 1`` forward
    rows. With ``n`` private texts, about ``n / B`` synthetic texts each see a full group.

``method="auto"`` (the default)
    ``pe`` (Private Evolution) on every device. The first rule (private prediction on a GPU when
    the auto ``B`` reaches its target clip) was measured against PE once a GPU was available
    (docs/text-bench.md, fifth round): over twelve (corpus, seed, epsilon) cells PE's
    train-on-synthetic accuracy was higher in nine and within 0.03 in the other three, and private
    prediction was at chance on the corpus unlike the public model's writing at every epsilon.
    ``private_prediction`` stays available by name.

PE's rounds and variations (``iterations`` / ``variations`` left unset)
    :data:`PE_SCHEDULE_CPU` (3 rounds, 3 variations per kept candidate) on a CPU, where 200
    texts from 5,000 private texts take 7-8 minutes on one thread; :data:`PE_SCHEDULE_GPU` (10
    rounds, 4 variations) on a CUDA device, where that costs about 100 s -- when the budget keeps
    the noise of 10 rounds at most :data:`MAX_GPU_SCHEDULE_SIGMA` (epsilon 3 at delta 1e-6 gives
    4.88; epsilon 1 gives 13.4 and falls back to the CPU schedule). Measured (docs/text-bench.md,
    fifth round): at epsilon 3, ten rounds of four variations brought accuracy within 0.02 of real
    texts on every pair measured, where 3 rounds fell 0.03-0.07 short on the convention corpus,
    and the highest MAUVE of any synthetic set (0.34-0.51 there); at epsilon 1 (sigma 13.4) they
    lost 0.07 accuracy on RT and gained 0.015 on the convention corpus. The bound sits just above
    the one noise level measured to help; budgets in between are unmeasured and keep 3 rounds.
    On a CPU ten rounds took 47 minutes on one thread, so they are not the CPU default. The
    device is that of the decode (``backend="ray"``: the actors'), a public input, as are epsilon
    and delta; sigma is calibrated for the resolved number of rounds before any private text is
    read, as always.
"""

from __future__ import annotations

import math

from dpsynth.accounting.calibration import exponential_epsilon_per_step

TARGET_CLIP = 1.0
MIN_AUTO_GROUP_SIZE = 4
MAX_AUTO_GROUP_SIZE = 64
#: cap on ``(B + 1) * num_texts``: forward rows of one decoding step over all outputs
ROWS_PER_STEP_BUDGET = 8192
METHODS = ("auto", "pe", "private_prediction")
#: PE's (iterations, variations per kept candidate) when the caller sets neither, on a CPU ...
PE_SCHEDULE_CPU = (3, 3)
#: ... and on a CUDA device (module docstring: measured, and cheap there)
PE_SCHEDULE_GPU = (10, 4)
#: the GPU schedule only where its per-round noise multiplier stays at most this (module docstring)
MAX_GPU_SCHEDULE_SIGMA = 5.0


def auto_group_size_cap(num_texts_total: int) -> int:
    """Largest ``B`` the auto rule may choose for ``num_texts_total`` outputs (compute cap)."""
    by_compute = ROWS_PER_STEP_BUDGET // max(1, int(num_texts_total)) - 1
    return max(MIN_AUTO_GROUP_SIZE, min(MAX_AUTO_GROUP_SIZE, by_compute))


def uncapped_group_size(epsilon: float, delta: float, max_new_tokens: int, temperature: float) -> int:
    """``ceil(2 * TARGET_CLIP / (eps_tok * tau))``: the ``B`` whose clip reaches the target."""
    eps_tok = exponential_epsilon_per_step(epsilon, delta, int(max_new_tokens))
    return max(1, math.ceil(2.0 * TARGET_CLIP / (eps_tok * float(temperature)) - 1e-9))


def auto_group_size(
    epsilon: float, delta: float, max_new_tokens: int, temperature: float, num_texts_total: int
) -> int:
    """The public rule for ``B`` (see the module docstring)."""
    wanted = uncapped_group_size(epsilon, delta, max_new_tokens, temperature)
    return max(MIN_AUTO_GROUP_SIZE, min(wanted, auto_group_size_cap(num_texts_total)))


def choose_method(method: str) -> str:
    """Resolve ``method`` ("auto", "pe" or "private_prediction"): "auto" is "pe" (module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return "pe" if method == "auto" else method


def pe_schedule(
    device_type: str, epsilon: float, delta: float, iterations: int | None, variations: int | None
) -> tuple[int, int]:
    """PE's ``(iterations, variations)``: the caller's values, else the default schedule
    (:data:`PE_SCHEDULE_GPU` on ``"cuda"`` when the budget keeps its noise multiplier at most
    :data:`MAX_GPU_SCHEDULE_SIGMA`, :data:`PE_SCHEDULE_CPU` otherwise)."""
    schedule = PE_SCHEDULE_CPU
    if device_type == "cuda" and (iterations is None or variations is None):
        from dpsynth.text.pe.privacy import calibrate_pe

        if calibrate_pe(epsilon, delta, PE_SCHEDULE_GPU[0]).noise_multiplier <= MAX_GPU_SCHEDULE_SIGMA:
            schedule = PE_SCHEDULE_GPU
    return (schedule[0] if iterations is None else iterations,
            schedule[1] if variations is None else variations)
