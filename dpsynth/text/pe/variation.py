"""Public prompts of Private Evolution: initial candidates and variations (paraphrase, fill-in).

Every prompt is built from public inputs only: the caller's instruction, the public label, and a
*candidate* -- a text the public model wrote, selected through the noisy vote histogram. No
private text ever appears in a prompt. The variation kinds, used in turn (``kinds``):

* ``"paraphrase"`` (Aug-PE): "Rephrase the following text ... about N words";
* ``"fill_in"`` (Aug-PE): a fraction of the candidate's words is replaced by ``_`` and the model
  writes the complete text;
* ``"example"``: the candidate is shown as an example and the model writes another text like it
  (the same shape as private prediction's prompt, here with a public candidate).

``N`` (adaptive length, as in Aug-PE) is the candidate's word count times a random factor in
[0.7, 1.3]. The randomness here only shapes public prompts (post-processing); it comes from the
generator the caller passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

LABEL_PHRASE = "The text must be {label}."
BLANK = "_"
DEFAULT_BLANK_FRACTION = 0.5


#: the end of a complete sentence: . ! or ? (optionally closed by a quote or bracket) before a space or the end
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_ENDS_A_SENTENCE = re.compile(r"[.!?][\"')\]]*$")
#: a trimmed text keeps at least this many words; shorter cuts keep the whole generation
MIN_TRIMMED_WORDS = 3


def tidy(text: str) -> str:
    """A generation cleaned of the token limit's cut (public post-processing of public text).

    Surrounding whitespace is stripped; a text that does not end a sentence (the decoder stopped
    at ``max_new_tokens`` mid-sentence) is cut after its last complete sentence, when that keeps
    at least :data:`MIN_TRIMMED_WORDS` words; otherwise it is returned whole.
    """
    text = text.strip()
    if not text or _ENDS_A_SENTENCE.search(text):
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and len(text[: ends[-1]].split()) >= MIN_TRIMMED_WORDS:
        return text[: ends[-1]]
    return text


def has_blank(text: str) -> bool:
    """True when a fill-in-the-blanks answer still contains a blank (a word made only of ``_``)."""
    return any(word.strip(BLANK) == "" for word in text.split())


def _label_line(label: str | None) -> str:
    return "" if label is None else "\n" + LABEL_PHRASE.format(label=label)


def initial_message(instruction: str, label: str | None) -> str:
    """The user message that asks for a fresh candidate (instruction and public label only)."""
    return f"{instruction.strip()}{_label_line(label)}\nReply with the text only."


def target_words(candidate: str, rng: np.random.Generator) -> int:
    """Adaptive length: the candidate's word count scaled by a random factor in [0.7, 1.3]."""
    words = max(1, len(candidate.split()))
    return max(3, int(round(words * rng.uniform(0.7, 1.3))))


def mask_words(candidate: str, fraction: float, rng: np.random.Generator) -> str:
    """``candidate`` with about ``fraction`` of its words (at least one) replaced by ``_``."""
    words = candidate.split()
    if not words:
        return BLANK
    count = max(1, int(round(fraction * len(words))))
    for index in rng.choice(len(words), size=min(count, len(words)), replace=False):
        words[int(index)] = BLANK
    return " ".join(words)


def paraphrase_message(instruction: str, label: str | None, candidate: str, words: int) -> str:
    """Ask for a paraphrase of a (public) candidate."""
    return (
        f"{instruction.strip()}{_label_line(label)}\n"
        f"Rephrase the following text in about {words} words, keeping its meaning and style:\n"
        f"{candidate}\nReply with the new text only."
    )


def fill_in_message(instruction: str, label: str | None, masked: str, words: int) -> str:
    """Ask the model to fill the blanks of a masked (public) candidate."""
    return (
        f"{instruction.strip()}{_label_line(label)}\n"
        f"Fill in the blanks (_) of the following text and write the complete text in about {words} words:\n"
        f"{masked}\nReply with the complete text only."
    )


def example_message(instruction: str, label: str | None, candidate: str, words: int) -> str:
    """Ask for a new text like a (public) candidate shown as an example."""
    return (
        f"{instruction.strip()}{_label_line(label)}\n"
        f"Here is an example:\n{candidate}\n\n"
        f"Write another one like it, in about {words} words. Reply with the text only."
    )


#: the variation kinds, in the order a candidate's variations cycle through them
VARIATION_KINDS = ("paraphrase", "fill_in", "example")
DEFAULT_VARIATION_KINDS = ("paraphrase", "fill_in")


def check_variation_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``kinds`` validated (non-empty, each one of :data:`VARIATION_KINDS`); public input."""
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in VARIATION_KINDS]
    if not kinds or unknown:
        raise ValueError(f"variation kinds must be a non-empty list of {', '.join(VARIATION_KINDS)}; got {list(kinds)}")
    return kinds


@dataclass(frozen=True)
class VariationPlan:
    """Public settings of the variation step."""

    instruction: str
    blank_fraction: float = DEFAULT_BLANK_FRACTION
    kinds: tuple[str, ...] = DEFAULT_VARIATION_KINDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", check_variation_kinds(self.kinds))

    def messages(
        self, candidates: list[str], labels: list[str | None], per_candidate: int, rng: np.random.Generator
    ) -> tuple[list[str], list[int], list[str]]:
        """``per_candidate`` variation prompts of every candidate (the plan's kinds in turn).

        Returns the prompts and, for each, the index of the candidate it varies and its kind.
        """
        out: list[str] = []
        source: list[int] = []
        kinds: list[str] = []
        for index, (candidate, label) in enumerate(zip(candidates, labels)):
            for k in range(per_candidate):
                words = target_words(candidate, rng)
                kind = self.kinds[k % len(self.kinds)]
                if kind == "paraphrase":
                    out.append(paraphrase_message(self.instruction, label, candidate, words))
                elif kind == "fill_in":
                    masked = mask_words(candidate, self.blank_fraction, rng)
                    out.append(fill_in_message(self.instruction, label, masked, words))
                else:
                    out.append(example_message(self.instruction, label, candidate, words))
                source.append(index)
                kinds.append(kind)
        return out, source, kinds
