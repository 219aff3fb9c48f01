"""Private Evolution (Aug-PE) for text: public-model candidates selected by a DP vote histogram.

Modules: :mod:`.privacy` (relation, proof, calibration), :mod:`.histogram` (pure vote / noise /
selection functions), :mod:`.variation` (public prompts), :mod:`.evolution` (the loop),
:mod:`.generator` (the public model through the decoding engine), :mod:`.run` (the steps of one
call: plan -> load -> charge -> embed + evolve -> complete).
"""
