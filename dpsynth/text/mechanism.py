"""Pure torch functions of the private-prediction step (clip, aggregate, candidate set, sample).

One decoding step of one group g with members ``i = 1..n_g`` (each member's prompt contains one
private text) and one public prompt (no private text) is::

    phi_bar = pub + (1 / B) * sum_i clip(phi_i - pub, -C, C)        # aggregate()
    V       = { y : pub(y) >= kth_largest(pub, k) - 2C/B }          # candidate_mask()
    y_t     ~ softmax(phi_bar[V] / tau)                              # sample_tokens()

``B`` (the *divisor*) is the public nominal group size, never the actual member count ``n_g``:
this is what makes the per-coordinate sensitivity of ``phi_bar`` equal to ``C / B`` under
adding or removing one member, whatever ``n_g`` is (see :mod:`dpsynth.text.privacy` for the
proof and the accounting).  All functions are batched over groups (leading dimension ``G``),
keep everything on the input tensors' device, and have no state; they never copy logits to the
host.

Shapes: ``V`` is the vocabulary size, ``R`` the number of member rows over all groups.
"""

from __future__ import annotations

import torch


def clip_to_public(member_logits: torch.Tensor, public_logits: torch.Tensor, clip: float) -> torch.Tensor:
    """DClip: ``public + clamp(member - public, -clip, clip)``, coordinate-wise.

    ``member_logits`` and ``public_logits`` broadcast against each other (e.g. ``(R, V)`` with
    ``(R, V)``, or ``(G, n, V)`` with ``(G, 1, V)``).  Every coordinate of the result lies within
    ``clip`` of the public logit, so one member can move the group sum by at most ``clip`` per
    coordinate.  ``-inf`` / ``nan`` member logits are mapped into the clip range too (a ``-inf``
    member logit becomes ``public - clip``), so no member can push a coordinate outside it.
    """
    _check_clip(clip)
    diff = torch.nan_to_num(member_logits.float() - public_logits.float(), nan=0.0, posinf=clip, neginf=-clip)
    return public_logits.float() + diff.clamp(-clip, clip)


def clipped_member_sum(
    member_logits: torch.Tensor,
    public_logits: torch.Tensor,
    row_group: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """``S[g] = sum over rows r with row_group[r] == g of clamp(member[r] - public[g], -C, C)``.

    ``member_logits``: ``(R, V)``; ``public_logits``: ``(G, V)``; ``row_group``: ``(R,)`` long
    tensor of group indices in ``[0, G)``.  Groups without members get a zero row.  Returns a
    float32 ``(G, V)`` tensor on the logits' device.
    """
    _check_clip(clip)
    public = public_logits.float()
    diff = member_logits.float() - public.index_select(0, row_group)
    diff = torch.nan_to_num(diff, nan=0.0, posinf=clip, neginf=-clip).clamp_(-clip, clip)
    total = torch.zeros_like(public)
    total.index_add_(0, row_group, diff)
    return total


def aggregate(
    member_logits: torch.Tensor,
    public_logits: torch.Tensor,
    clip: float,
    divisor: float,
    row_group: torch.Tensor | None = None,
) -> torch.Tensor:
    """Aggregated logits ``pub + (1/divisor) * sum_i clip(member_i - pub, -C, C)`` per group.

    Two layouts:

    * ``row_group is None``: ``member_logits`` is ``(G, n, V)`` (every group has ``n`` members)
      and ``public_logits`` is ``(G, V)``;
    * ``row_group`` given: ``member_logits`` is ``(R, V)`` (variable group sizes; row ``r``
      belongs to group ``row_group[r]``) and ``public_logits`` is ``(G, V)``.

    ``divisor`` must be the PUBLIC nominal group size ``B`` (not the member count): then adding
    or removing one member changes each coordinate of the result by at most ``clip / divisor``
    and replacing one member by at most ``2 * clip / divisor``.  Returns float32 ``(G, V)``.
    """
    if not divisor > 0:
        raise ValueError(f"divisor must be > 0, got {divisor}")
    if row_group is None:
        if member_logits.dim() != 3:
            raise ValueError("member_logits must be (G, n, V) when row_group is not given")
        groups, members, vocab = member_logits.shape
        row_group = torch.arange(groups, device=member_logits.device).repeat_interleave(members)
        member_logits = member_logits.reshape(groups * members, vocab)
    total = clipped_member_sum(member_logits, public_logits, row_group, clip)
    return public_logits.float() + total / float(divisor)


def candidate_width(clip: float, divisor: float) -> float:
    """Width ``2C/B`` of the Top-k+ expansion below the k-th public logit.

    Derivation for our relation (add-or-remove one member, divisor ``B``): one member moves any
    coordinate of the aggregate by at most ``C/B``.  Take the k public-top tokens; after one
    member's contribution each still has aggregated logit ``>= l - C/B`` (``l`` = k-th public
    logit), while a token with ``pub(y) < l - 2C/B`` has aggregated logit ``< l - C/B``.  So no
    token outside ``V`` can enter the top-k through the contribution of any single member, and
    the top-k of every one-member aggregate lies inside ``V``.  The set is built from public
    logits and public parameters only, so it costs no privacy whatever the width; the width is a
    utility choice (InvisibleInk's Top-k+).
    """
    _check_clip(clip)
    if not divisor > 0:
        raise ValueError(f"divisor must be > 0, got {divisor}")
    return 2.0 * float(clip) / float(divisor)


def candidate_mask(public_logits: torch.Tensor, top_k: int, clip: float, divisor: float) -> torch.Tensor:
    """Top-k+ candidate set from PUBLIC logits only: ``pub(y) >= kth_largest(pub) - 2C/B``.

    ``public_logits``: ``(G, V)`` (or ``(V,)``).  Returns a boolean mask of the same shape.
    ``top_k >= V`` (or ``top_k <= 0``) selects the whole vocabulary.  Ties at the threshold are
    included, so the set always contains at least ``top_k`` tokens.  It depends on nothing but
    its arguments, none of which is derived from private text.
    """
    width = candidate_width(clip, divisor)
    public = public_logits.float()
    vocab = public.shape[-1]
    if top_k <= 0 or top_k >= vocab:
        return torch.ones_like(public, dtype=torch.bool)
    kth = torch.topk(public, int(top_k), dim=-1).values[..., -1:]
    return public >= (kth - width)


def masked_log_probs(aggregated: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probabilities of ``softmax(aggregated / temperature)`` restricted to ``mask``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scores = aggregated.float() / float(temperature)
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.log_softmax(scores, dim=-1)


def sample_tokens(
    aggregated: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw one token per group from ``softmax(aggregated / temperature)`` over ``mask``.

    This draw is the exponential mechanism; its randomness IS the privacy noise, so in
    production ``generator`` must be seeded from OS entropy (see
    :func:`dpsynth.randomness.secret_torch_generator`), never from a user seed.  Tokens outside the
    mask have probability exactly zero.  ``aggregated``/``mask``: ``(G, V)``; returns a long
    ``(G,)`` tensor on the same device.
    """
    if aggregated.shape != mask.shape:
        raise ValueError(f"aggregated {tuple(aggregated.shape)} and mask {tuple(mask.shape)} differ")
    probs = masked_log_probs(aggregated, mask, temperature).exp()
    squeeze = probs.dim() == 1
    if squeeze:
        probs = probs.unsqueeze(0)
    tokens = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
    return tokens[0] if squeeze else tokens


def _check_clip(clip: float) -> None:
    if not (clip >= 0 and clip < float("inf")):
        raise ValueError(f"clip must be finite and >= 0, got {clip}")


def private_step(
    member_logits: torch.Tensor,
    public_logits: torch.Tensor,
    row_group: torch.Tensor,
    clip: float,
    divisor: float,
    top_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's sampling distribution parameters: ``(aggregated logits, candidate mask)``.

    The aggregate uses the members (private) and the public logits; the mask uses ONLY the public
    logits and public parameters -- ``member_logits`` is not passed to :func:`candidate_mask`.
    """
    aggregated = aggregate(member_logits, public_logits, clip, divisor, row_group=row_group)
    mask = candidate_mask(public_logits, top_k, clip, divisor)
    return aggregated, mask
