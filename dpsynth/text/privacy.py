"""Privacy accounting of DP text generation by private prediction: relation, proof, calibration.

Privacy unit and neighbouring relation
--------------------------------------
**Privacy unit: one private text** (one input record: the text and, when labelled, its label).
**Relation: add-or-remove one text** (``D' = D + {x}`` or ``D' = D - {x}``), the relation every
dpsynth ledger uses.  Public (never derived from the data): the label set, the number of outputs
per label ``G_l``, the nominal group size / divisor ``B``, the clip ``C``, the temperature
``tau``, the maximum number of generated tokens ``T``, ``top_k``, the model and the prompts.

Mechanism (one call)
--------------------
1. Partition: each text goes to group ``h_K(label, text) mod G_l`` of its label, with ``h_K`` a
   keyed hash under a fresh secret key (:mod:`dpsynth.text.grouping`).  No cap on group sizes.
2. For each group independently, for ``t = 1..T`` (stopping early at end-of-sequence):
   ``phi_bar = pub + (1/B) sum_{i in group} clip(phi_i - pub, -C, C)`` where ``phi_i`` are the
   next-token logits of member ``i``'s prompt (instruction + its text + tokens so far) and
   ``pub`` those of the public prompt (instruction + tokens so far); then sample
   ``y_t ~ softmax(phi_bar / tau)`` restricted to the Top-k+ set built from ``pub`` only.

Sensitivity (proof)
-------------------
Fix the key and the tokens generated so far.  Adding text ``x`` to ``D`` does not move any other
text (its group depends only on itself), so exactly one group ``g`` gains exactly one member and
every other group's inputs are unchanged.  In group ``g`` the public logits are unchanged (they
depend on public inputs and on the previous tokens only) and the sum gains one term
``clip(phi_x - pub, -C, C)`` with every coordinate in ``[-C, C]``.  Hence for every token ``y``

    phi_bar'(y) - phi_bar(y) = (1/B) clip(phi_x(y) - pub(y), -C, C)  in  [-C/B, C/B],

so the per-coordinate (l_inf) sensitivity of the utility ``u = phi_bar / tau`` is
``Delta = C / (B tau)`` under add-or-remove -- because the divisor is the public ``B`` and not
the member count (an average over the actual count would have sensitivity up to ``2C/n``
through the change of the divisor, and would leak the count).  Removal is symmetric.  (Had we
capped group sizes, adding one text could evict another and the change would be ``2C/B``; we do
not cap.)  The candidate set is a function of ``pub`` and public parameters, identical on both
datasets, so restricting to it is post-processing of public information.

Exponential mechanism bound
---------------------------
Sampling from ``softmax(u)`` over a fixed set, with ``u`` and ``u'`` differing by at most
``Delta`` per coordinate, is ``2 Delta``-bounded-range (the log-ratio ``u(y) - u'(y) - log Z/Z'``
varies over ``y`` within an interval of length ``2 Delta``): one token is
``eps_tok = 2C / (B tau)``-bounded-range, hence ``eps_tok``-DP and ``eps_tok^2 / 8``-zCDP
(Cesar & Rogers 2021), i.e. ``rho_tok = C^2 / (2 B^2 tau^2)``.

Composition
-----------
Tokens: at most ``T`` (public, fixed in advance) adaptively composed steps, so the group's output
is ``T``-fold composed (stopping early at EOS is post-processing of a prefix; the count never
depends on data beyond that).  Groups: disjoint, data-independent partition, and each text
influences one group's output only -> parallel composition: the whole release is as private as
one group's ``T`` steps, ``rho = T C^2 / (2 B^2 tau^2)`` zCDP, and also ``T eps_tok``-DP.  The
ledger records the event ``SelfComposedDpEvent(ExponentialMechanismDpEvent(eps_tok), T)``; its
accountants convert it to ``(epsilon, delta)`` (RDP via ``rho``, PLD via pure DP; the smaller
valid bound is charged).  Labels are public metadata (declared label set, public number of
outputs per label): groups of different labels are also disjoint, so labels add nothing.

Calibration: ``eps_tok = exponential_epsilon_per_step(epsilon, delta, T)`` (largest per-step
value whose ``T``-fold composition fits the budget), then ``C = eps_tok * B * tau / 2``
(rounded down so the recorded event never exceeds the calibrated one).

Floating point: the proof is for exact arithmetic.  Rows of one batched forward are
mathematically independent, but float rounding of a row's logits may depend (~1e-6) on the batch
it ran in (padding length, chunk composition), which other groups' data influence; like the
floating-point caveat of every sampled DP mechanism, this is not covered by the bound.

Side channels, also not covered (like wall time, which grows with the number and length of the
texts): the progress bar (``progress=True``, the CLI without ``--quiet``) advances at each step by
the number of groups still decoding in the current chunk, and chunks hold at most
``max_batch_rows`` forward rows, one per member -- so how groups pack into chunks, visible in the
bar's updates and timing, depends on the group sizes.  The bar's total (``G * T``) is public.
docs/text.md, "Side channels and floating point".

What is NOT released: the number of texts, group sizes, text lengths, which texts share a group.
The generation stops at a public ``T``; outputs count ``sum_l G_l`` is public.  A call with
fewer texts than one group (``n < B``) is not refused: empty or small groups decode from (mostly)
the public prompt, so whether a release exists never depends on the number of texts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dp_accounting import dp_event

from dpsynth.validation import positive_float

PRIVACY_UNIT = "one private text (one input record: the text and its label, if labelled)"
NEIGHBOURING_RELATION = "add-or-remove one text"
MECHANISM_NAME = "private-prediction-exponential (DClip + Top-k+, InvisibleInk-style)"
SENSITIVITY_STATEMENT = (
    "per-coordinate sensitivity of the aggregated logits is C/B under add-or-remove one text "
    "(public divisor B, keyed-hash groups without size cap, DClip to [-C, C] around public logits); "
    "token sampling is 2C/(B*tau)-bounded-range; T tokens compose; disjoint groups compose in parallel"
)


def per_token_epsilon(clip: float, group_size: int, temperature: float) -> float:
    """Bounded-range epsilon of one sampled token: ``2 C / (B tau)``."""
    positive_float("group_size", group_size)
    positive_float("temperature", temperature)
    if not (math.isfinite(clip) and clip >= 0):
        raise ValueError(f"clip must be finite and >= 0, got {clip!r}")
    return 2.0 * float(clip) / (float(group_size) * float(temperature))


def zcdp_rho_total(clip: float, group_size: int, temperature: float, max_new_tokens: int) -> float:
    """zCDP of one call: ``rho = T C^2 / (2 B^2 tau^2)`` (= ``T eps_tok^2 / 8``)."""
    return max_new_tokens * per_token_epsilon(clip, group_size, temperature) ** 2 / 8.0


def text_generation_event(clip: float, group_size: int, temperature: float, max_new_tokens: int) -> dp_event.DpEvent:
    """The ledger event of one call: ``T`` self-composed ``2C/(B tau)``-bounded-range steps."""
    from dpsynth.accounting.events import ExponentialMechanismDpEvent

    positive_float("max_new_tokens", max_new_tokens)
    return dp_event.SelfComposedDpEvent(
        ExponentialMechanismDpEvent(per_token_epsilon(clip, group_size, temperature)), int(max_new_tokens)
    )


def clip_for_token_epsilon(epsilon_per_token: float, group_size: int, temperature: float) -> float:
    """Largest ``C`` with ``2 C / (B tau) <= epsilon_per_token`` (inverse of :func:`per_token_epsilon`)."""
    clip = float(epsilon_per_token) * float(group_size) * float(temperature) / 2.0
    while clip > 0 and per_token_epsilon(clip, group_size, temperature) > epsilon_per_token:
        clip = math.nextafter(clip, 0.0)
    return clip


@dataclass(frozen=True)
class TextPrivacyPlan:
    """Every privacy-relevant parameter of one call, all from public inputs."""

    epsilon: float
    delta: float
    group_size: int
    max_new_tokens: int
    temperature: float
    clip: float
    epsilon_per_token: float
    rho: float

    #: the ledger's plan protocol: groups are a data-independent partition, no staged sub-events
    sampling = "partition"
    stages = ()
    mechanism = MECHANISM_NAME

    @property
    def event(self) -> dp_event.DpEvent:
        """The event charged to the ledger for this call."""
        return text_generation_event(self.clip, self.group_size, self.temperature, self.max_new_tokens)

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON-ready parameters (the ledger's plan protocol)."""
        return self.describe()

    @property
    def logit_sensitivity(self) -> float:
        """Per-coordinate change of the aggregated logits when one text is added/removed: ``C/B``."""
        return self.clip / self.group_size

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the ledger entry and the card."""
        out = asdict(self)
        out.update(
            logit_sensitivity=self.logit_sensitivity,
            privacy_unit=PRIVACY_UNIT,
            neighbouring_relation=NEIGHBOURING_RELATION,
            sensitivity=SENSITIVITY_STATEMENT,
        )
        return out


def calibrate_text_mechanism(
    epsilon: float,
    delta: float,
    group_size: int,
    max_new_tokens: int,
    temperature: float,
) -> TextPrivacyPlan:
    """Calibrate the clip ``C`` so that one call is (epsilon, delta)-DP per text.

    Uses :func:`dpsynth.accounting.exponential_epsilon_per_step` (the ledger's own accountants,
    re-verified) for the per-token bounded-range epsilon, then ``C = eps_tok B tau / 2``.
    Raises ``ValueError`` for non-positive / non-finite public parameters.
    """
    from dpsynth.accounting.calibration import exponential_epsilon_per_step

    positive_float("epsilon", epsilon)
    positive_float("group_size", group_size)
    positive_float("max_new_tokens", max_new_tokens)
    positive_float("temperature", temperature)
    if int(group_size) != group_size or int(max_new_tokens) != max_new_tokens:
        raise ValueError("group_size and max_new_tokens must be integers")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ValueError(
            f"DP text generation needs 0 < delta < 1 (got {delta!r}): the ledger's accountants "
            "certify the T-fold composition through (epsilon, delta); use e.g. delta=1e-6"
        )
    eps_step = exponential_epsilon_per_step(epsilon, delta, int(max_new_tokens))
    clip = clip_for_token_epsilon(eps_step, int(group_size), float(temperature))
    eps_tok = per_token_epsilon(clip, int(group_size), float(temperature))
    return TextPrivacyPlan(
        epsilon=float(epsilon),
        delta=float(delta),
        group_size=int(group_size),
        max_new_tokens=int(max_new_tokens),
        temperature=float(temperature),
        clip=clip,
        epsilon_per_token=eps_tok,
        rho=int(max_new_tokens) * eps_tok**2 / 8.0,
    )
