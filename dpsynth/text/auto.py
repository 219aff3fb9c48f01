"""Public rules that pick parameters a user did not set: the group size ``B`` and the method.

Both rules are functions of public inputs only (budget, decoding parameters, the number of
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

``method="auto"``
    ``private_prediction`` when the model runs on a CUDA device *and* the auto ``B`` reaches the
    target clip without hitting the cap; otherwise ``pe`` (Private Evolution), whose private
    cost does not grow with text length and whose compute does not grow with ``B`` -- the right
    choice on CPU and at small per-token budgets.
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


def choose_method(
    method: str,
    *,
    device_type: str,
    epsilon: float,
    delta: float,
    max_new_tokens: int,
    temperature: float,
    num_texts_total: int,
) -> str:
    """Resolve ``method`` ("auto", "pe" or "private_prediction") with the public rule above."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        return method
    if device_type != "cuda":
        return "pe"
    wanted = uncapped_group_size(epsilon, delta, max_new_tokens, temperature)
    return "private_prediction" if wanted <= auto_group_size_cap(num_texts_total) else "pe"
