"""A KV cache whose per-layer buffers reserve room for the tokens still to come (speed only).

transformers' ``DynamicLayer`` appends each step's keys and values with ``torch.cat``, which
copies the whole cache of every layer at every decoding step. On a CPU that copy was most of a
step's time: 62% of the self CPU time of a 64-row SmolLM2-135M decoding step was ``aten::cat``
(torch profiler, ``docs/text-bench.md``, "tenth round"). :class:`ReservedLayer` keeps the keys and
values in buffers with ``reserve`` free positions after the ones written, writes each step into
the next free slot and hands the attention a view of the filled part -- the same values in the
same order, so the logits are those of the dynamic cache (tested in
``tests/test_text_kv_cache.py``). A write that does not fit reallocates to what is needed plus
``reserve`` (or doubles, when ``reserve`` is 0), so the prompt's prefill copies what the dynamic
cache copies and the ``reserve`` decoding steps that follow copy nothing; row selection (pruning
stopped groups) copies the buffers once, as the dynamic cache copies its tensors.

Nothing here sees anything but the model's activations of the rows it is given; it has no
privacy role.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

try:  # per-layer cache objects (recent transformers); without them the plain DynamicCache is used
    from transformers.cache_utils import DynamicLayer
except ImportError:  # pragma: no cover - depends on the installed transformers
    DynamicLayer = None  # type: ignore[assignment,misc]


class ReservedLayer(DynamicLayer if DynamicLayer is not None else object):  # type: ignore[misc]
    """One layer's keys and values ``(batch, heads, length, dim)`` in buffers with ``reserve`` spare positions."""

    is_croppable = False  # crop() is not implemented

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve = max(0, int(reserve))
        self.length = 0
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.length = 0
        self.key_buffer = self.value_buffer = None
        self.is_initialized = True

    def _buffers(self, template_k: torch.Tensor, template_v: torch.Tensor, needed: int) -> None:
        """Make the buffers hold at least ``needed`` positions (reallocated to ``needed + reserve``)."""
        if self.key_buffer is not None and needed <= self.key_buffer.shape[-2]:
            return
        size = needed + (self.reserve if self.reserve > 0 else needed)
        batch, heads, _, dim = template_k.shape
        keys = template_k.new_empty((batch, heads, size, dim))
        values = template_v.new_empty((batch, heads, size, template_v.shape[-1]))
        if self.key_buffer is not None and self.length:
            keys[:, :, : self.length].copy_(self.key_buffer[:, :, : self.length])
            values[:, :, : self.length].copy_(self.value_buffer[:, :, : self.length])
        self.key_buffer, self.value_buffer = keys, values

    def _expose(self) -> None:
        assert self.key_buffer is not None and self.value_buffer is not None
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new positions after the filled ones; return views of all filled positions."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self._buffers(key_states, value_states, end)
        assert self.key_buffer is not None and self.value_buffer is not None
        self.key_buffer[:, :, self.length:end].copy_(key_states)
        self.value_buffer[:, :, self.length:end].copy_(value_states)
        self.length = end
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def reset(self) -> None:
        self.key_buffer = self.value_buffer = None
        self.length = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("ReservedLayer does not crop")

    def _replace_rows(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows`` (a selection, or a repeat) of the whole buffers: one copy each."""
        assert self.key_buffer is not None and self.value_buffer is not None
        self.key_buffer = self.key_buffer.index_select(0, rows)
        self.value_buffer = self.value_buffer.index_select(0, rows)
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.length > 0:
            assert self.key_buffer is not None
            batch = self.key_buffer.shape[0]
            self._replace_rows(torch.arange(batch, device=self.key_buffer.device).repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length > 0:
            assert self.key_buffer is not None
            self._replace_rows(indices.to(self.key_buffer.device))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)


class ReservedCache(DynamicCache):
    """A ``DynamicCache`` whose layers are :class:`ReservedLayer` buffers with ``reserve`` spare positions."""

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.layer_class_to_replicate = lambda: ReservedLayer(reserve)


def new_cache(reserve: int) -> Any:
    """A :class:`ReservedCache` keeping ``reserve`` spare positions per layer, or a plain
    ``DynamicCache`` where the installed transformers has no per-layer cache objects."""
    if DynamicLayer is None or not hasattr(DynamicCache(), "layer_class_to_replicate"):
        return DynamicCache()  # pragma: no cover - depends on the installed transformers
    return ReservedCache(reserve)
