"""Batched private-prediction decoder: many groups x (B+1) rows per forward, KV cache kept.

Layout of one chunk of ``G`` active groups: rows ``0..G-1`` are the groups' public prompts,
rows ``G..R-1`` the member prompts, with ``row_group[r]`` the group of member row ``r``.  All
prompts are left-padded into one ``(R, L)`` batch (attention mask + explicit position ids), one
prefill fills a KV cache with room reserved for the ``T`` new tokens
(:mod:`dpsynth.text.kv_cache`: no per-step copy of the cache), and every step is a single
``(R, 1)`` forward.  Aggregation,
the candidate set and sampling (:mod:`dpsynth.text.mechanism`) run on the model's device; only
the ``G`` sampled token ids come back to the host each step (to detect end-of-sequence).  Groups
that emit a stop token are dropped from the batch and their rows pruned from the KV cache.
Groups are processed in chunks of at most ``max_rows`` rows to bound memory; a group larger
than ``max_rows`` runs alone, its rows split into forward shards of at most ``max_rows`` rows
(each with its own cache).  KV-cache memory is proportional to the rows of a chunk, i.e. to
the number of private texts in it: choose ``num_texts`` around ``n / B``.  The progress bar
advances per step by the groups still decoding in the chunk, so its updates show how groups pack
into chunks -- i.e. group sizes: a side channel outside the guarantee (:mod:`dpsynth.text.privacy`).

Randomness: :func:`dpsynth.randomness.secret_torch_generator` seeds a ``torch.Generator`` from
OS entropy; its seed is never stored or returned.  This sampling is the privacy noise of the
mechanism, so it must never be seeded from a user-provided seed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from dpsynth.randomness import secret_torch_generator
from dpsynth.text.kv_cache import new_cache
from dpsynth.text.mechanism import aggregate, candidate_mask, masked_log_probs, private_step, sample_tokens


def model_device(model: Any) -> torch.device:
    """The device of the model's parameters."""
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - parameterless model
        return torch.device("cpu")


@dataclass(frozen=True)
class DecodeSettings:
    """Public decoding parameters (from public inputs only)."""

    max_new_tokens: int
    clip: float
    divisor: int
    temperature: float
    top_k: int
    stop_token_ids: tuple[int, ...]
    pad_token_id: int
    max_rows: int = 128
    #: compute the private rows' logits only on the Top-k+ candidate columns (see :class:`SplitHead`)
    restrict_private_logits: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.divisor < 1:
            raise ValueError("divisor (group size) must be >= 1")
        if not self.temperature > 0:
            raise ValueError("temperature must be > 0")
        if self.max_rows < 2:
            raise ValueError("max_rows must be >= 2")


@dataclass
class GroupPrompts:
    """Token ids of one group: its public prompt and one private prompt per member."""

    public_ids: list[int]
    member_ids: list[list[int]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Number of forward rows (public + members)."""
        return 1 + len(self.member_ids)


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest common token prefix of ``rows``, leaving each row >= 1 own token."""
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    length = 0
    while length < limit and all(r[length] == first[length] for r in rows):
        length += 1
    return length


#: causal-LM classes whose logits are exactly ``lm_head(base_model(...).last_hidden_state)``: no
#: soft-capping, logit scaling or bias tricks, so the head can be applied to chosen columns only
PLAIN_HEAD_ARCHITECTURES = frozenset(
    {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}
)


class SplitHead:
    """The LM head applied outside the model: all columns for public rows, chosen columns for private rows.

    The Top-k+ candidate set comes from the public logits only, and tokens outside it have
    probability zero, so the private rows' logits are needed on the candidate columns only:
    ``hidden @ W[cols].T`` instead of ``hidden @ W.T`` (the LM head is ~20% of SmolLM2-135M's
    compute per row). Same values on those columns as the full head (same ``F.linear``).
    """

    def __init__(self, model: Any) -> None:
        self.base = model.base_model
        head = model.get_output_embeddings()
        self.weight = head.weight
        self.bias = getattr(head, "bias", None)

    @staticmethod
    def supports(model: Any) -> bool:
        """True for the architectures in :data:`PLAIN_HEAD_ARCHITECTURES` with a linear head."""
        head = getattr(model, "get_output_embeddings", lambda: None)()
        return (
            type(model).__name__ in PLAIN_HEAD_ARCHITECTURES
            and isinstance(head, torch.nn.Linear)
            and getattr(model, "base_model", model) is not model
        )

    def logits(self, hidden: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """``(R, V)`` logits of ``hidden`` (``(R, H)``), or ``(R, len(columns))`` on ``columns`` only."""
        if columns is None:
            return torch.nn.functional.linear(hidden, self.weight, self.bias)
        bias = None if self.bias is None else self.bias.index_select(0, columns)
        return torch.nn.functional.linear(hidden, self.weight.index_select(0, columns), bias)


def restricted_log_probs(
    head: SplitHead,
    hidden: torch.Tensor,
    n_public: int,
    row_group: torch.Tensor,
    settings: "DecodeSettings",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(columns, log-probs (G, len(columns)))`` of one private-prediction step on the union of
    the groups' Top-k+ candidate sets; ``hidden`` holds the public rows first, then the members.

    Equal to the full computation restricted to ``columns`` (every group's candidate set lies in
    ``columns``; outside its own set a group's log-prob is ``-inf`` in both).
    """
    public = head.logits(hidden[:n_public])
    mask = candidate_mask(public, settings.top_k, settings.clip, settings.divisor)
    columns = mask.any(0).nonzero().squeeze(1)
    members = head.logits(hidden[n_public:], columns)
    aggregated = aggregate(members, public.index_select(1, columns), settings.clip, settings.divisor, row_group)
    return columns, masked_log_probs(aggregated, mask.index_select(1, columns), settings.temperature)


class RowBatchDecoder:
    """Incremental decoding of a left-padded batch of rows with a kept KV cache.

    ``prefill(rows)`` returns the next-token logits of every row; ``step(tokens)`` appends one
    token per row and returns the new logits; ``select_rows(idx)`` keeps only those rows (cache
    pruned).  Logits are the model's last-position logits, on the model's device.
    """

    def __init__(self, model: Any, pad_token_id: int, hidden_only: bool = False, reserve: int = 0) -> None:
        self.model = model
        self.pad_token_id = int(pad_token_id)
        self.device = model_device(model)
        #: spare KV-cache positions kept after the prompt, for the tokens still to decode (speed only)
        self.reserve = max(0, int(reserve))
        #: return the last hidden states (``model.base_model``) instead of logits
        self.hidden_only = bool(hidden_only)
        self.runner = model.base_model if hidden_only else model
        parameters = inspect.signature(self.runner.forward).parameters
        self.keeps_last_logits = "logits_to_keep" in parameters
        # transformers >= 5 names the KV cache ``cache`` (``past_key_values`` logs a deprecation)
        self.cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
        self.cache: Any = None
        self.attention_mask: torch.Tensor | None = None
        self.next_position: torch.Tensor | None = None

    def _forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        kwargs = dict(
            input_ids=input_ids,
            attention_mask=self.attention_mask,
            position_ids=position_ids,
            use_cache=True,
        )
        kwargs[self.cache_kwarg] = self.cache
        if self.keeps_last_logits:
            kwargs["logits_to_keep"] = 1
        out = self.runner(**kwargs)
        self.cache = out.cache if self.cache_kwarg == "cache" else out.past_key_values
        if self.hidden_only:
            return out.last_hidden_state[:, -1, :]
        return out.logits[:, -1, :]

    def prefill(self, rows: Sequence[Sequence[int]], share_prefix: bool = True) -> torch.Tensor:
        """Run the prompts ``rows`` and keep the cache; returns ``(R, V)`` next-token logits.

        With ``share_prefix`` the longest token prefix common to all rows (the chat template,
        system prompt and instruction) is run once and its cache repeated for every row; the rest
        of each row is left-padded after it (padding in the middle is masked out, position ids
        continue from the prefix), which gives the same logits as running each row alone.
        """
        if not rows or any(len(r) == 0 for r in rows):
            raise ValueError("every row needs at least one prompt token")
        shared = common_prefix_length(rows) if share_prefix and len(rows) > 1 else 0
        self.cache = new_cache(self.reserve)
        if shared > 0:
            prefix = torch.as_tensor([list(rows[0][:shared])], dtype=torch.long, device=self.device)
            self.attention_mask = torch.ones_like(prefix)
            self._forward(prefix, torch.arange(shared, device=self.device).unsqueeze(0))
            self.cache.batch_repeat_interleave(len(rows))
        rest = [list(r[shared:]) for r in rows]
        length = max(len(r) for r in rest)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rest):
            ids[i, length - len(row):] = torch.as_tensor(row, dtype=torch.long)
            mask[i, length - len(row):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        position_ids = shared + (mask.cumsum(-1) - 1).clamp_(min=0)
        self.attention_mask = torch.cat(
            [torch.ones((len(rows), shared), dtype=mask.dtype, device=self.device), mask], dim=1
        )
        self.next_position = position_ids[:, -1:] + 1
        return self._forward(ids, position_ids)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``tokens`` (``(R,)``, one per row) and return the next ``(R, V)`` logits."""
        assert self.attention_mask is not None and self.next_position is not None, "prefill first"
        ones = torch.ones((self.attention_mask.shape[0], 1), dtype=self.attention_mask.dtype, device=self.device)
        self.attention_mask = torch.cat([self.attention_mask, ones], dim=1)
        position_ids = self.next_position
        self.next_position = position_ids + 1
        return self._forward(tokens.view(-1, 1).to(self.device), position_ids)

    def select_rows(self, indices: torch.Tensor) -> None:
        """Keep only rows ``indices`` (in that order) in the cache, mask and positions."""
        assert self.attention_mask is not None and self.next_position is not None, "prefill first"
        indices = indices.to(self.device)
        self.cache.batch_select_indices(indices)
        self.attention_mask = self.attention_mask.index_select(0, indices)
        self.next_position = self.next_position.index_select(0, indices)


class ShardedRowDecoder:
    """:class:`RowBatchDecoder` over consecutive shards of at most ``shard_rows`` rows.

    Same interface; each shard has its own padding and KV cache and runs as its own forward, so
    the activation memory of one forward is bounded even when one group has more member rows
    than ``shard_rows``. Logits are concatenated in row order.
    """

    def __init__(
        self, model: Any, pad_token_id: int, shard_rows: int, hidden_only: bool = False, reserve: int = 0
    ) -> None:
        if shard_rows < 1:
            raise ValueError("shard_rows must be >= 1")
        self.model = model
        self.hidden_only = hidden_only
        self.reserve = reserve
        self.pad_token_id = int(pad_token_id)
        self.shard_rows = int(shard_rows)
        self.shards: list[RowBatchDecoder] = []
        self.sizes: list[int] = []

    def prefill(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Prefill every shard; returns ``(R, V)`` logits in row order."""
        self.shards, self.sizes, outputs = [], [], []
        for start in range(0, len(rows), self.shard_rows):
            part = rows[start:start + self.shard_rows]
            decoder = RowBatchDecoder(self.model, self.pad_token_id, hidden_only=self.hidden_only, reserve=self.reserve)
            outputs.append(decoder.prefill(part))
            self.shards.append(decoder)
            self.sizes.append(len(part))
        return torch.cat(outputs, dim=0)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row (``(R,)``) and return the next ``(R, V)`` logits."""
        parts = torch.split(tokens, self.sizes)
        return torch.cat([shard.step(part) for shard, part in zip(self.shards, parts)], dim=0)

    def select_rows(self, indices: torch.Tensor) -> None:
        """Keep rows ``indices`` (strictly increasing); shards left empty are dropped."""
        indices = indices.to("cpu")
        if indices.numel() > 1 and not bool((indices[1:] > indices[:-1]).all()):
            raise ValueError("select_rows needs strictly increasing row indices")
        shards, sizes, start = [], [], 0
        for shard, size in zip(self.shards, self.sizes):
            local = indices[(indices >= start) & (indices < start + size)] - start
            start += size
            if local.numel() == 0:
                continue
            if local.numel() < size:
                shard.select_rows(local)
            shards.append(shard)
            sizes.append(int(local.numel()))
        self.shards, self.sizes = shards, sizes


def chunk_groups(groups: Sequence[GroupPrompts], max_rows: int) -> list[list[int]]:
    """Indices of groups per chunk: consecutive groups while their rows fit in ``max_rows``."""
    chunks: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for index, group in enumerate(groups):
        if current and rows + group.rows > max_rows:
            chunks.append(current)
            current, rows = [], 0
        current.append(index)
        rows += group.rows
    if current:
        chunks.append(current)
    return chunks


def _decode_chunk(
    model: Any,
    groups: Sequence[GroupPrompts],
    settings: DecodeSettings,
    generator: torch.Generator,
    progress: Any,
) -> list[list[int]]:
    device = model_device(model)
    head = SplitHead(model) if settings.restrict_private_logits and SplitHead.supports(model) else None
    decoder = ShardedRowDecoder(
        model, settings.pad_token_id, settings.max_rows, hidden_only=head is not None, reserve=settings.max_new_tokens
    )
    n_groups = len(groups)
    rows = [g.public_ids for g in groups] + [m for g in groups for m in g.member_ids]
    row_group = torch.tensor(
        [gi for gi, g in enumerate(groups) for _ in g.member_ids], dtype=torch.long, device=device
    )
    active = torch.arange(n_groups, device=device)  # chunk-local group id of each active group
    stop_ids = torch.tensor(settings.stop_token_ids or (-1,), dtype=torch.long, device=device)
    generated = torch.full((n_groups, settings.max_new_tokens), -1, dtype=torch.long, device=device)
    logits = decoder.prefill(rows)
    for step in range(settings.max_new_tokens):
        n_active = active.shape[0]
        if head is None:  # ``logits`` are the model's logits
            aggregated, mask = private_step(
                logits[n_active:], logits[:n_active], row_group, settings.clip, settings.divisor, settings.top_k
            )
            tokens = sample_tokens(aggregated, mask, settings.temperature, generator)
        else:  # ``logits`` are last hidden states; private rows only on the candidate columns
            columns, log_probs = restricted_log_probs(head, logits, n_active, row_group, settings)
            picked = torch.multinomial(log_probs.exp(), num_samples=1, generator=generator).squeeze(-1)
            tokens = columns.index_select(0, picked)
        generated[active, step] = tokens
        stopped = torch.isin(tokens, stop_ids)
        keep = ~stopped
        n_keep = int(keep.sum())  # the only per-step host sync: one integer
        if progress is not None:  # token slots: sampled now + skipped by groups that stopped
            progress.update(n_active + (n_active - n_keep) * (settings.max_new_tokens - 1 - step))
        if n_keep == 0 or step == settings.max_new_tokens - 1:
            break
        if n_keep < n_active:
            new_index = keep.long().cumsum(0) - 1
            member_keep = keep.index_select(0, row_group)
            kept_groups = keep.nonzero().squeeze(1)
            kept_members = member_keep.nonzero().squeeze(1)
            decoder.select_rows(torch.cat([kept_groups, n_active + kept_members]))
            row_group = new_index.index_select(0, row_group.index_select(0, kept_members))
            active = active.index_select(0, kept_groups)
            tokens = tokens.index_select(0, kept_groups)
        logits = decoder.step(torch.cat([tokens, tokens.index_select(0, row_group)]))
    out: list[list[int]] = []
    stop_set = set(settings.stop_token_ids)
    for row in generated.tolist():
        ids: list[int] = []
        for token in row:
            if token < 0 or token in stop_set:
                break
            ids.append(token)
        out.append(ids)
    return out


def decode_groups(
    model: Any,
    groups: Sequence[GroupPrompts],
    settings: DecodeSettings,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "DP text generation",
) -> list[list[int]]:
    """Generate one token sequence per group with the private-prediction mechanism.

    Returns the generated token ids of each group in input order (stop token excluded), each of
    length ``<= settings.max_new_tokens``.  ``generator`` defaults to
    :func:`dpsynth.randomness.secret_torch_generator` on the model's device; pass one only in tests.  Runs under ``torch.inference_mode``.
    """
    device = model_device(model)
    if generator is None:
        generator = secret_torch_generator(device)
    results: list[list[int]] = [[] for _ in groups]
    bar = tqdm(
        total=len(groups) * settings.max_new_tokens, desc=desc, unit="tok", disable=not progress
    )
    try:
        with torch.inference_mode():
            for chunk in chunk_groups(groups, settings.max_rows):
                decoded = _decode_chunk(model, [groups[i] for i in chunk], settings, generator, bar)
                for index, ids in zip(chunk, decoded):
                    results[index] = ids
    finally:
        bar.close()
    return results


def stop_token_ids(tokenizer: Any, model: Any) -> tuple[int, ...]:
    """End-of-sequence ids of the tokenizer and the model's generation config (public)."""
    ids: set[int] = set()
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.add(int(eos))
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif isinstance(config_eos, (list, tuple)):
        ids.update(int(v) for v in config_eos)
    return tuple(sorted(ids))


def pad_token_id(tokenizer: Any) -> int:
    """The pad id (EOS when there is no pad token, else 0)."""
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return 0
