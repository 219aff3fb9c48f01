"""Prompt construction: the private prompt (instruction + one example) and the public prompt.

Both go through the tokenizer's chat template when it has one (SmolLM2-Instruct does) and a
plain "instruction / example / answer" layout otherwise.  The private text is inserted as a
token span truncated to a PUBLIC maximum length (``max_example_tokens``): truncation is a
per-text function, so it does not change the privacy analysis, and it bounds memory.

The public prompt is the same template without the example; it must not depend on any private
text.  The templates are fixed strings; :meth:`PromptTemplate.sha256` fingerprints them for the
ledger and the card.

Labels (public) enter both prompts in one way: the labelled suffixes name the label
(``"Here is a {label} example: ... Write another one like it:"`` in the private prompt,
``"Write one {label} example. ..."`` in the public one). This wording was chosen with the
forced-token diagnostic ``python bench/text.py prompts`` (docs/text-bench.md): against the
earlier "Label: X" line it raised the gain from one in-context example (log p of real texts with
the example minus without) on both corpora measured, partly through a weaker public prompt; a
few-shot chat layout did about as well (better on one corpus, worse on the other).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

DEFAULT_INSTRUCTION = "Write a short text."
DEFAULT_PRIVATE_SUFFIX = "Here is an example:\n{example}\n\nWrite another one like it:"
DEFAULT_PUBLIC_SUFFIX = "Reply with the text only."
DEFAULT_LABELLED_PRIVATE_SUFFIX = "Here is a {label} example:\n{example}\n\nWrite another one like it:"
DEFAULT_LABELLED_PUBLIC_SUFFIX = "Write one {label} example. Reply with the text only."
#: the layout used before issue 10's prompt measurement (kept for comparison in bench/)
LABEL_LINE = "Label: {label}"

_SENTINEL = "\u2063DPSYNTH_EXAMPLE\u2063"


@dataclass(frozen=True)
class PromptTemplate:
    """Public prompt texts. ``{example}`` in the private suffixes marks where a private text goes;
    ``{label}`` in the labelled suffixes and in ``label_line`` where the public label goes.

    User message = instruction, then (labelled, when ``label_line`` is not empty) the label line,
    then the suffix -- parts separated by a blank line. Unlabelled calls use ``private_suffix`` /
    ``public_suffix``; labelled calls ``labelled_private_suffix`` / ``labelled_public_suffix``.
    """

    instruction: str = DEFAULT_INSTRUCTION
    private_suffix: str = DEFAULT_PRIVATE_SUFFIX
    public_suffix: str = DEFAULT_PUBLIC_SUFFIX
    label_line: str = ""
    labelled_private_suffix: str = DEFAULT_LABELLED_PRIVATE_SUFFIX
    labelled_public_suffix: str = DEFAULT_LABELLED_PUBLIC_SUFFIX

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError("instruction must be a non-empty string")
        for name in ("private_suffix", "labelled_private_suffix"):
            if getattr(self, name).count("{example}") != 1:
                raise ValueError(f"{name} must contain '{{example}}' exactly once")
        if "{example}" in self.public_suffix + self.labelled_public_suffix + self.label_line:
            raise ValueError("the public prompt and the label line must not contain '{example}'")
        if "{label}" not in self.label_line + self.labelled_private_suffix or (
            "{label}" not in self.label_line + self.labelled_public_suffix
        ):
            raise ValueError("the label must enter both prompts: put '{label}' in label_line or in both labelled suffixes")

    def user_message(self, label: str | None, private: bool) -> str:
        """The user message; for ``private=True`` it contains the example sentinel."""
        parts = [self.instruction.strip()]
        if label is None:
            suffix = self.private_suffix if private else self.public_suffix
        else:
            if self.label_line:
                parts.append(self.label_line.replace("{label}", label))
            suffix = (self.labelled_private_suffix if private else self.labelled_public_suffix).replace("{label}", label)
        parts.append(suffix.replace("{example}", _SENTINEL) if private else suffix)
        return "\n\n".join(parts)

    def describe(self) -> dict[str, Any]:
        """The template as JSON-ready data."""
        return {
            "instruction": self.instruction,
            "private_suffix": self.private_suffix,
            "public_suffix": self.public_suffix,
            "label_line": self.label_line,
            "labelled_private_suffix": self.labelled_private_suffix,
            "labelled_public_suffix": self.labelled_public_suffix,
        }

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of the template (recorded in ledger and card)."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render(tokenizer: Any, user_message: str) -> str:
    """The full prompt string for ``user_message`` (chat template when available)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )
    return f"{user_message}\n\nText:\n"


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


@dataclass(frozen=True)
class PromptEncoder:
    """Token ids of public prompts and private prompts for one tokenizer and template.

    ``prefix_ids(label) + example_ids[:max_example_tokens] + suffix_ids(label)`` is a private
    prompt; :meth:`public_ids` the public one.  A tokenizer that adds a BOS token gets it at the
    start of every prompt.
    """

    tokenizer: Any
    template: PromptTemplate
    max_example_tokens: int

    def __post_init__(self) -> None:
        if int(self.max_example_tokens) < 1:
            raise ValueError("max_example_tokens must be >= 1")

    def _bos(self) -> list[int]:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        probe = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        if bos is not None and probe and probe[0] == bos:
            return [bos]
        return []

    def _split(self, label: str | None) -> tuple[list[int], list[int]]:
        rendered = render(self.tokenizer, self.template.user_message(label, private=True))
        before, after = rendered.split(_SENTINEL)
        bos = self._bos()
        prefix = _encode(self.tokenizer, before)
        if bos and prefix[:1] == bos:
            bos = []
        return bos + prefix, _encode(self.tokenizer, after)

    def public_ids(self, label: str | None) -> list[int]:
        """Token ids of the public prompt (no private text)."""
        bos = self._bos()
        ids = _encode(self.tokenizer, render(self.tokenizer, self.template.user_message(label, private=False)))
        return (bos if ids[:1] != bos else []) + ids

    def private_ids(self, texts: list[str], label: str | None) -> list[list[int]]:
        """Token ids of the private prompts of ``texts`` (each example truncated)."""
        prefix, suffix = self._split(label)
        limit = int(self.max_example_tokens)
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
        return [prefix + list(ids[:limit]) + suffix for ids in encoded]
