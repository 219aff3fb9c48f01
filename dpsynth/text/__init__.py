"""DP synthetic text: Private Evolution (Aug-PE) and private prediction (InvisibleInk-style).

Entry point: :func:`generate` (module :mod:`dpsynth.text.synthesis`) -- privacy unit one text,
add-or-remove-one relation; proofs in :mod:`dpsynth.text.pe.privacy` and
:mod:`dpsynth.text.privacy`; guide in ``docs/text.md``.
"""

from dpsynth.text.synthesis import (
    PreparedGeneration,
    TextSynthesisResult,
    TooFewTextsError,
    generate,
    prepare_generation,
)

__all__ = ["PreparedGeneration", "TextSynthesisResult", "TooFewTextsError", "generate", "prepare_generation"]
