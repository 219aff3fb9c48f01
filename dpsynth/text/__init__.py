"""DP synthetic text by private LLM inference (private prediction, InvisibleInk-style).

Entry point: :func:`generate` -- privacy unit one text, add-or-remove-one relation; see
:mod:`dpsynth.text.privacy` for the proof and ``docs/text.md`` for a guide.
"""

from dpsynth.text.generate import LargeGroupsWarning, TextSynthesisResult, TooFewTextsError, generate

__all__ = ["LargeGroupsWarning", "TextSynthesisResult", "TooFewTextsError", "generate"]
