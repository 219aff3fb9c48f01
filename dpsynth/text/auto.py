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
    The device's schedule -- :data:`PE_SCHEDULE_CPU` (6 rounds, 3 variations per kept candidate)
    on a CPU, :data:`PE_SCHEDULE_GPU` (10 rounds, 4 variations) on a CUDA device -- when the
    budget keeps that many rounds' noise multiplier at most :data:`MAX_SCHEDULE_SIGMA` (at delta
    1e-6: epsilon 3 gives 3.78 for 6 rounds and 4.88 for 10; epsilon 1 gives 10.3 and 13.4), else
    :data:`PE_SCHEDULE_SHORT` (3 rounds, 3 variations) on either device. Measured
    (docs/text-bench.md, fifth to seventh rounds), 200 texts from 5,000 private texts:

    * at epsilon 3 more rounds help where the public model writes unlike the private texts: on
      the convention corpus 3 rounds gave MAUVE 0.39-0.58, 6 rounds 0.55-0.56, and 10 rounds
      0.68 (one run); on Rotten Tomatoes 6 rounds gave MAUVE 0.65-0.71 against 0.53-0.58;
    * at epsilon 1 (sigma 13.4 for 10 rounds) the long schedule lost 0.07 accuracy on RT, hence
      the noise bound, which sits just above the noise levels measured to help; budgets in
      between are unmeasured and keep 3 rounds;
    * cost: 6 rounds took 1,241-1,276 s on one CPU thread with two runs sharing the 2-core machine
      (within the issue's 30 minutes on 2 cores), 10 rounds 47-51 minutes on a CPU and about
      100 s on an H200 -- hence one schedule per device.

    The device is that of the decode (``backend="ray"``: the actors'), a public input, as are
    epsilon and delta; sigma is calibrated for the resolved number of rounds before any private
    text is read, as always.
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
PE_SCHEDULE_CPU = (6, 3)
#: ... and on a CUDA device (module docstring: measured, and cheap there) ...
PE_SCHEDULE_GPU = (10, 4)
#: ... and on either device when the device's schedule would need more noise than the bound below
PE_SCHEDULE_SHORT = (3, 3)
#: a device's schedule only where its per-round noise multiplier stays at most this (module docstring)
MAX_SCHEDULE_SIGMA = 5.0


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
    (:data:`PE_SCHEDULE_GPU` on ``"cuda"``, :data:`PE_SCHEDULE_CPU` elsewhere, when the budget
    keeps its noise multiplier at most :data:`MAX_SCHEDULE_SIGMA`; :data:`PE_SCHEDULE_SHORT`
    otherwise). Every input is public."""
    schedule = PE_SCHEDULE_GPU if device_type == "cuda" else PE_SCHEDULE_CPU
    if iterations is None or variations is None:
        from dpsynth.text.pe.privacy import calibrate_pe

        if calibrate_pe(epsilon, delta, schedule[0]).noise_multiplier > MAX_SCHEDULE_SIGMA:
            schedule = PE_SCHEDULE_SHORT
    return (schedule[0] if iterations is None else iterations,
            schedule[1] if variations is None else variations)
