"""A tiny random-weight Llama + a tokenizer trained on the fly, saved as a local model folder.

Used by the text tests (and by anyone who needs a fast, offline causal LM)::

    from tests.tiny_model import build_tiny_model_dir
    model_dir = build_tiny_model_dir(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

The folder holds a 2-layer Llama (hidden size 48, ~40K parameters plus embeddings), a byte-level
BPE tokenizer (vocabulary ~400, so any text can be encoded) with ChatML-style special tokens and
a chat template, and ``generation_config.json``.  Weights are drawn from a fixed seed inside a
forked RNG, so the folder is identical on every call and the global torch RNG is left untouched.
Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

TINY_VOCAB_SIZE = 400
TINY_HIDDEN_SIZE = 48
TINY_NUM_LAYERS = 2
TINY_SEED = 1234

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_TRAINING_CORPUS = [
    "The patient was discharged home with instructions to rest and drink fluids.",
    "Please take your medication twice a day with food.",
    "The restaurant served excellent pasta and the staff were friendly.",
    "I would not recommend this hotel: the room was dirty and noisy.",
    "Call your doctor if the fever returns or you feel short of breath.",
    "Great coffee, quick service, and a quiet place to work.",
    "The quick brown fox jumps over the lazy dog.",
    "Write a text similar to the following example.",
    "user assistant system example label positive negative neutral",
    "0 1 2 3 4 5 6 7 8 9 . , ! ? : ; ' \" ( ) - _ / \n",
]


def _train_tokenizer():
    """A byte-level BPE tokenizer (every string encodable) with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_TRAINING_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model_dir(path: Path) -> Path:
    """Build a tiny random-weight Llama and its tokenizer in ``path`` and return ``path``.

    ``path`` is created if missing. The result loads with ``AutoModelForCausalLM`` /
    ``AutoTokenizer.from_pretrained(path)`` offline; the tokenizer has a chat template and
    ``eos_token = "<|im_end|>"``. Deterministic: same weights and vocabulary on every call.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    vocab_size = len(tokenizer)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_HIDDEN_SIZE,
        intermediate_size=2 * TINY_HIDDEN_SIZE,
        num_hidden_layers=TINY_NUM_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.5,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(config)
    model.eval()
    model.save_pretrained(path, safe_serialization=True)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
