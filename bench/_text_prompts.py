"""Forced-token diagnostic of prompt variants (issue 10 §2): does the model lean on its example?

Real held-out texts are forced through the public model under each candidate prompt, and the
mean log-probability of the real text's tokens (per token, averaged over texts) is read off:

* ``public``   -- the public prompt of the true label (no example): what the model writes alone;
* ``example``  -- the private prompt with one *other* real text of the same label as the example
  (what one member of a private-prediction group contributes; a random same-label text, because
  groups are random);
* ``gain = example - public`` -- how much one in-context example moves the model toward real
  texts of its kind (the per-member signal private prediction aggregates);
* ``margin(public)`` -- log p under the true label's public prompt minus the wrong label's;
* ``margin(example)`` -- log p under the true label's private prompt (same-label example) minus
  the wrong label's private prompt (an example of the wrong label): how much a group's prompts
  tell the classes apart.

All in nats per token; standard errors over texts (paired where a difference is taken). A
variant is a pair of functions ``(label, example) -> prompt token ids``; the text's tokens follow
the prompt directly (the chat variants end with the assistant header, the plain variants with
``Review:``-style cue and a space before the text). Only the text's own tokens are scored (not the
end-of-turn token), so formats that end texts differently are compared on the same tokens.

Nothing here is private: the bench uses a public corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dpsynth.text.pe.variation import fill_in_message, initial_message, mask_words, paraphrase_message
from dpsynth.text.prompts import LABEL_LINE, PromptEncoder, PromptTemplate

#: the private-prediction layout before issue 10's measurement: a "Label: X" line, then the example
OLD_SUFFIX = ("Here is an example:\n{example}\n\n"
              "Write one new text in the same style and on a similar topic. Reply with the text only.")
OLD_TEMPLATE = dict(private_suffix=OLD_SUFFIX, label_line=LABEL_LINE, labelled_private_suffix=OLD_SUFFIX,
                    labelled_public_suffix="Reply with the text only.")

#: (label, example or None) -> (prompt ids, whether the text follows after a space)
PromptFn = Callable[[str, "str | None"], tuple[list[int], bool]]


@dataclass(frozen=True)
class Variant:
    """One prompt variant: the public prompt (example=None) and the private prompt (an example)."""

    name: str
    description: str
    build: PromptFn
    has_public: bool = True
    has_example: bool = True


def _chat_ids(tokenizer, messages: list[dict], continuation: str = "") -> list[int]:
    """Chat-template ids of ``messages`` + generation prompt (+ a pre-filled assistant start)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + continuation
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def build_variants(tokenizer, instruction: str, max_example_tokens: int) -> list[Variant]:
    """The candidate prompts, in the order they are reported."""
    variants: list[Variant] = []

    def from_template(template: PromptTemplate) -> PromptFn:
        encoder = PromptEncoder(tokenizer, template, max_example_tokens)

        def build(label: str, example: str | None) -> tuple[list[int], bool]:
            if example is None:
                return encoder.public_ids(label), False
            return encoder.private_ids([example], label)[0], False

        return build

    variants.append(Variant(
        "label-line", "library default before this session: instruction, 'Label: X', 'Here is an example: ... "
        "Write one new text in the same style ...'",
        from_template(PromptTemplate(instruction=instruction, **OLD_TEMPLATE)),
    ))
    variants.append(Variant("labelled-example", "'Here is a X example: ... Write another one like it:' "
                            "(public: 'Write one X example.'); the library default since this measurement",
                            from_template(PromptTemplate(instruction=instruction))))

    def example_turn(label: str, example: str | None) -> tuple[list[int], bool]:
        first = _user(f"{instruction}\n\nLabel: {label}. Reply with the text only.")
        if example is None:
            return _chat_ids(tokenizer, [first]), False
        again = _user(f"Write another {label} one, different from the last. Reply with the text only.")
        return _chat_ids(tokenizer, [first, _assistant(example), again]), False

    variants.append(Variant("example-turn", "few-shot chat: the example is the model's own earlier answer, "
                            "then 'Write another X one'", example_turn))

    def list_turn(label: str, example: str | None) -> tuple[list[int], bool]:
        ask = _user(f"{instruction}\n\nLabel: {label}. Write several, one per line, nothing else.")
        return _chat_ids(tokenizer, [ask], "" if example is None else f"{example}\n"), False

    variants.append(Variant("list-in-answer", "chat; the example is the first line of the model's answer, the "
                            "text is the next line (needs a newline stop)", list_turn))

    def plain(label: str, example: str | None) -> tuple[list[int], bool]:
        head = f"{instruction}\n\n"
        shown = "" if example is None else f"Label: {label}\nText: {example}\n\n"
        ids = list(tokenizer(f"{head}{shown}Label: {label}\nText:", add_special_tokens=False)["input_ids"])
        return ids, True

    variants.append(Variant("plain-pairs", "no chat template: 'Label: X / Text: ...' pairs, the text follows "
                            "'Text:' (needs a newline stop)", plain))

    # Private Evolution's public prompts (no private text ever enters them; the "example" below is
    # the candidate a variation prompt rewrites).
    rng = np.random.default_rng(0)

    def pe_initial(label: str, example: str | None) -> tuple[list[int], bool]:
        return _chat_ids(tokenizer, [_user(initial_message(instruction, label))]), False

    def pe_paraphrase(label: str, example: str | None) -> tuple[list[int], bool]:
        if example is None:
            return pe_initial(label, None)
        words = max(3, len(example.split()))
        return _chat_ids(tokenizer, [_user(paraphrase_message(instruction, label, example, words))]), False

    def pe_fill_in(label: str, example: str | None) -> tuple[list[int], bool]:
        if example is None:
            return pe_initial(label, None)
        masked = mask_words(example, 0.5, rng)
        words = max(3, len(example.split()))
        return _chat_ids(tokenizer, [_user(fill_in_message(instruction, label, masked, words))]), False

    variants.append(Variant("pe-paraphrase", "PE: initial prompt ('The text must be X.') / paraphrase of a "
                            "candidate", pe_paraphrase))
    variants.append(Variant("pe-fill-in", "PE: initial prompt / fill-in-the-blanks of a candidate", pe_fill_in))
    return variants


def target_ids(tokenizer, text: str, leading_space: bool) -> list[int]:
    """Token ids of a real text as the model would emit it after the prompt."""
    return list(tokenizer((" " if leading_space else "") + text, add_special_tokens=False)["input_ids"])


def forced_log_probs(model, pad_id: int, prompts: Sequence[list[int]], targets: Sequence[list[int]],
                     batch_size: int = 16) -> np.ndarray:
    """Mean log p (nats/token) of each ``targets[i]`` after ``prompts[i]`` (right padding, one pass)."""
    out = np.zeros(len(prompts))
    order = np.argsort([len(p) + len(t) for p, t in zip(prompts, targets)])
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            rows = [list(prompts[i]) + list(targets[i]) for i in idx]
            length = max(len(r) for r in rows)
            ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), length), dtype=torch.long)
            for r, row in enumerate(rows):
                ids[r, :len(row)] = torch.as_tensor(row)
                mask[r, :len(row)] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            for r, i in enumerate(idx):
                p, t = len(prompts[i]), len(targets[i])
                positions = torch.arange(p - 1, p + t - 1)
                picked = logp[r, positions, torch.as_tensor(targets[i])]
                out[i] = float(picked.mean())
    return out


@dataclass(frozen=True)
class VariantScore:
    name: str
    public: np.ndarray  # per text
    example: np.ndarray
    public_wrong: np.ndarray
    example_wrong: np.ndarray


def _mean_se(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "-"
    return f"{values.mean():+.3f} ± {values.std(ddof=1) / np.sqrt(values.size):.3f}"


def score_variant(model, tokenizer, variant: Variant, texts: Sequence[str], labels: Sequence[str],
                  same_examples: Sequence[str], other_examples: Sequence[str], other_labels: Sequence[str],
                  batch_size: int = 16) -> VariantScore:
    """Forced-token log p of ``texts`` under the variant's four prompts (see the module docstring)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompts: list[list[int]] = []
    targets: list[list[int]] = []
    for text, label, same, other, wrong in zip(texts, labels, same_examples, other_examples, other_labels):
        for lab, ex in ((label, None), (label, same), (wrong, None), (wrong, other)):
            ids, space = variant.build(lab, ex)
            prompts.append(ids)
            targets.append(target_ids(tokenizer, text, space))
    scores = forced_log_probs(model, pad, prompts, targets, batch_size).reshape(-1, 4)
    return VariantScore(variant.name, scores[:, 0], scores[:, 1], scores[:, 2], scores[:, 3])


def paired_rows(scores: Sequence[VariantScore]) -> list[str]:
    """Markdown rows: each variant minus the first, paired over the same texts and examples."""
    if len(scores) < 2:
        return []
    base = scores[0]
    rows = [f"| variant minus {base.name} (paired) | log p, public | log p, example | gain | label margin, public |",
            "|---|---|---|---|---|"]
    for s in scores[1:]:
        rows.append(
            f"| {s.name} | {_mean_se(s.public - base.public)} | {_mean_se(s.example - base.example)} "
            f"| {_mean_se((s.example - s.public) - (base.example - base.public))} "
            f"| {_mean_se((s.public - s.public_wrong) - (base.public - base.public_wrong))} |"
        )
    return rows


def report_rows(scores: Sequence[VariantScore]) -> list[str]:
    """Markdown rows: variant | public | with example | gain | margin(public) | margin(example)."""
    rows = ["| variant | log p, public prompt | log p, one same-label example | gain (example - public) "
            "| label margin, public | label margin, example |", "|---|---|---|---|---|---|"]
    for s in scores:
        rows.append(
            f"| {s.name} | {_mean_se(s.public)} | {_mean_se(s.example)} | {_mean_se(s.example - s.public)} "
            f"| {_mean_se(s.public - s.public_wrong)} | {_mean_se(s.example - s.example_wrong)} |"
        )
    return rows
