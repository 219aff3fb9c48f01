"""The reserved-buffer KV cache layer holds exactly what the dynamic (concatenating) layer holds."""

from __future__ import annotations

import pytest
import torch

from dpsynth.text.kv_cache import ReservedCache, ReservedLayer, new_cache

DynamicLayer = pytest.importorskip("transformers.cache_utils").DynamicLayer


def _pair(reserve: int):
    return ReservedLayer(reserve), DynamicLayer()


def _same(reserved: ReservedLayer, dynamic: DynamicLayer) -> None:
    assert reserved.get_seq_length() == dynamic.get_seq_length()
    assert torch.equal(reserved.keys, dynamic.keys) and torch.equal(reserved.values, dynamic.values)


@pytest.mark.parametrize("reserve", [0, 1, 3, 64])
def test_reserved_layer_matches_the_dynamic_layer_through_appends_selects_and_repeats(reserve):
    gen = torch.Generator().manual_seed(reserve)
    reserved, dynamic = _pair(reserve)
    assert reserved.get_seq_length() == 0

    def append(batch: int, length: int) -> None:
        k, v = torch.randn(batch, 2, length, 4, generator=gen), torch.randn(batch, 2, length, 4, generator=gen)
        out_r, out_d = reserved.update(k, v), dynamic.update(k, v)
        assert all(torch.equal(a, b) for a, b in zip(out_r, out_d))
        _same(reserved, dynamic)

    append(1, 3)  # a shared prefix of one row ...
    reserved.batch_repeat_interleave(4)
    dynamic.batch_repeat_interleave(4)  # ... repeated for four rows
    _same(reserved, dynamic)
    append(4, 2)
    for _ in range(6):  # one decoding step at a time, past the reserve (buffers reallocate)
        append(4, 1)
    keep = torch.tensor([0, 2, 3])
    reserved.batch_select_indices(keep)
    dynamic.batch_select_indices(keep)
    _same(reserved, dynamic)
    for _ in range(3):
        append(3, 1)
    assert reserved.key_buffer.shape[-2] >= reserved.get_seq_length() == 3 + 2 + 6 + 3


def test_a_step_writes_into_the_reserved_room_without_reallocating():
    reserved = ReservedLayer(reserve=3)
    reserved.update(torch.zeros(2, 1, 5, 4), torch.zeros(2, 1, 5, 4))
    buffer = reserved.key_buffer
    assert buffer.shape[-2] == 5 + 3
    for step in range(3):  # the three reserved positions take three steps without a new buffer
        reserved.update(torch.full((2, 1, 1, 4), float(step)), torch.ones(2, 1, 1, 4))
        assert reserved.key_buffer is buffer and reserved.keys.data_ptr() == buffer.data_ptr()
    assert reserved.keys.shape == (2, 1, 8, 4) and torch.equal(reserved.keys[:, :, 7], torch.full((2, 1, 4), 2.0))
    reserved.update(torch.ones(2, 1, 1, 4), torch.ones(2, 1, 1, 4))  # the fourth reallocates: 9 + 3 positions
    assert reserved.key_buffer is not buffer and reserved.key_buffer.shape[-2] == 12


def test_new_cache_is_a_reserved_cache_whose_layers_keep_the_reserve():
    cache = new_cache(7)
    assert isinstance(cache, ReservedCache)
    cache.update(torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4), 0)
    assert isinstance(cache.layers[0], ReservedLayer) and cache.layers[0].key_buffer.shape[-2] == 2 + 7
    assert cache.get_seq_length() == 2
