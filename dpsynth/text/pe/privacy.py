"""Privacy accounting of Private Evolution (Aug-PE) for text: relation, proof, calibration.

Privacy unit and neighbouring relation
--------------------------------------
**Privacy unit: one private text** (one input record: the text and, when labelled, its label).
**Relation: add-or-remove one text**, the relation every dpsynth ledger uses.  Public (never
derived from the data): the label set, the number of synthetic texts per label ``N_l``, the
number of variations per kept candidate ``L - 1``, the number of iterations ``T``, the noise
multiplier ``sigma``, the threshold ``H``, the generator model and its prompts, the embedder.

Mechanism (one call; :mod:`dpsynth.text.pe.evolution`)
------------------------------------------------------
The public model writes an initial population of candidates per label from the instruction
alone.  For ``t = 1..T``:

1. every private text ``x`` with label ``l`` votes for its nearest candidate of label ``l``
   (cosine similarity of embeddings, by default after subtracting the mean of label ``l``'s
   candidate embeddings from both sides -- a mean of public candidates, the same for every
   private text; ties broken by the lowest candidate index: a function of ``x`` and the public
   candidates only) -- :func:`dpsynth.text.pe.histogram.nearest_candidates`,
   :func:`dpsynth.text.pe.histogram.vote_histogram`;
2. the vote histogram ``h`` (one count per candidate, all labels side by side) is released as
   ``h + N(0, sigma^2 I)`` -- :func:`dpsynth.text.pe.histogram.noisy_histogram`;
3. post-processing of the noisy histogram only: counts below ``H`` are set to 0, candidates are
   kept in proportion to the remaining counts, and the public model writes variations of the
   kept candidates (it never sees a private text).

Sensitivity (proof)
-------------------
Fix the candidates of iteration ``t`` (they are a function of the earlier noisy histograms and
public randomness only).  A text's vote depends only on the text itself, its label and the
candidates -- not on the other texts (the centring mean is computed from the candidates alone,
so it is the same with or without ``x``).  So adding text ``x`` (label ``l``) to ``D`` leaves every
other vote unchanged and adds exactly one vote, for exactly one candidate (of label ``l``):
``h'(D + {x}) - h(D)`` is a unit vector ``e_j``, so ``||h' - h||_2 = 1``.  Removal is symmetric.
The L2 sensitivity of the whole histogram -- every label at once -- is therefore **1**; labels
are disjoint parts of one histogram, so one Gaussian event per iteration covers all labels (the
same statement as parallel composition across labels).  The Gaussian mechanism with standard
deviation ``sigma`` and sensitivity 1 is ``GaussianDpEvent(sigma)`` (noise multiplier
``sigma``).

Composition
-----------
The ``T`` iterations are adaptive (the candidates of iteration ``t`` depend on the noisy
histograms of iterations ``< t``), so they compose sequentially:
``SelfComposedDpEvent(GaussianDpEvent(sigma), T)``.  This is the one event the ledger records;
its accountants (PLD and RDP, the smaller valid bound charged) turn it into (epsilon, delta).
``T`` is public and fixed before the call, so the count of mechanisms never depends on data.

Calibration: ``sigma = gaussian_noise_multiplier(epsilon, delta, T)`` -- the smallest noise
multiplier whose ``T``-fold composition the ledger's own accountants certify within
(epsilon, delta); computed from public inputs before any private text is read.

What is NOT released: the number of private texts, which text voted for what, the exact counts.
The output count ``sum_l N_l`` is public.  The final texts are candidates written by the public
model: a private text can reach the output only through the noisy histogram.

Floating point: the proof is for exact arithmetic of the votes (integers, exact) and of the
Gaussian noise (floating-point sampling, like every sampled DP mechanism; not hardened against
Mironov-style attacks).  A vote is exact given the embeddings, but an embedding is float
arithmetic: had a text's embedding depended on the other texts of its batch (padding, the batch's
row count -- measured ~1e-7 to ~2e-6 on MiniLM), adding one text could move another's embedding
in its last bits and, in principle, flip its vote between two near-tied candidates, which the
sensitivity-1 argument does not cover.  The built-in embedders run each text in a batch of its own
token length and a fixed row count (:func:`dpsynth.text.embeddings.same_length_batches`), which
was measured to make a text's embedding bit-identical whatever the other texts (CPU, 1 and 2
threads: ``tests/test_text_embeddings.py``); other kernels (GPU, other BLAS) and a caller's own
embedder function are outside that test and, like wall time and progress output (the PE messages
report noisy, post-processed counts only), outside the guarantee (docs/text.md, "Side channels
and floating point").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dp_accounting import dp_event

from dpsynth.validation import positive_float, positive_int

PRIVACY_UNIT = "one private text (one input record: the text and its label, if labelled)"
NEIGHBOURING_RELATION = "add-or-remove one text"
MECHANISM_NAME = "private-evolution-gaussian (Aug-PE nearest-neighbour vote histogram)"
SENSITIVITY_STATEMENT = (
    "each private text casts exactly one vote (for its nearest candidate of its own label), so adding or "
    "removing one text changes exactly one count of the vote histogram by 1: L2 sensitivity 1 for all labels "
    "at once; T adaptive Gaussian releases compose sequentially"
)
#: the vote histogram's L2 sensitivity under add-or-remove one text (one vote per text)
HISTOGRAM_L2_SENSITIVITY = 1.0


def pe_event(noise_multiplier: float, iterations: int) -> dp_event.DpEvent:
    """The ledger event of one PE call: ``T`` self-composed Gaussian mechanisms (sensitivity 1)."""
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(f"noise_multiplier must be finite and > 0, got {noise_multiplier!r}")
    return dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(float(noise_multiplier)), int(iterations))


@dataclass(frozen=True)
class PEPrivacyPlan:
    """Every privacy-relevant parameter of one PE call, all from public inputs."""

    epsilon: float
    delta: float
    iterations: int
    noise_multiplier: float
    threshold: float

    #: the ledger's plan protocol: one event, no sampling, no staged sub-events
    mechanism = MECHANISM_NAME
    sampling = "none"
    stages = ()

    @property
    def event(self) -> dp_event.DpEvent:
        """The event charged to the ledger for this call."""
        return pe_event(self.noise_multiplier, self.iterations)

    @property
    def noise_std(self) -> float:
        """Standard deviation of the noise on every count: ``sigma * sensitivity`` = ``sigma``."""
        return self.noise_multiplier * HISTOGRAM_L2_SENSITIVITY

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON-ready description for the ledger entry and the card."""
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the ledger entry and the card."""
        out = asdict(self)
        out.update(
            histogram_l2_sensitivity=HISTOGRAM_L2_SENSITIVITY,
            privacy_unit=PRIVACY_UNIT,
            neighbouring_relation=NEIGHBOURING_RELATION,
            sensitivity=SENSITIVITY_STATEMENT,
        )
        return out


def calibrate_pe(epsilon: float, delta: float, iterations: int, threshold: float | None = None) -> PEPrivacyPlan:
    """Calibrate ``sigma`` so that ``iterations`` noisy vote histograms are (epsilon, delta)-DP.

    Uses :func:`dpsynth.accounting.calibration.gaussian_noise_multiplier` (the ledger's own
    accountants, re-verified).  ``threshold`` (public) defaults to ``2 * sigma``: counts below it
    are treated as noise.  Raises ``ValueError`` for bad public parameters.
    """
    from dpsynth.accounting.calibration import gaussian_noise_multiplier

    iterations = positive_int("iterations", iterations)
    epsilon = positive_float("epsilon", epsilon)
    if isinstance(delta, bool) or not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ValueError(f"Private Evolution needs 0 < delta < 1 (Gaussian noise), got {delta!r}")
    sigma = gaussian_noise_multiplier(float(epsilon), float(delta), iterations)
    if threshold is None:
        threshold = 2.0 * sigma
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return PEPrivacyPlan(
        epsilon=float(epsilon),
        delta=float(delta),
        iterations=iterations,
        noise_multiplier=float(sigma),
        threshold=float(threshold),
    )
