"""DP synthetic text: Private Evolution (Aug-PE) and private prediction (InvisibleInk-style).

Entry point: :func:`generate` (module :mod:`dpsynth.text.synthesis`) -- privacy unit one text,
add-or-remove-one relation; proofs in :mod:`dpsynth.text.pe.privacy` and
:mod:`dpsynth.text.privacy`; guide in ``docs/text.md``.
"""

from dpsynth.text.synthesis import LargeGroupsWarning, TextSynthesisResult, TooFewTextsError, generate

__all__ = ["LargeGroupsWarning", "TextSynthesisResult", "TooFewTextsError", "generate"]
