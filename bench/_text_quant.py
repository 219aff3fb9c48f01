"""int8 dynamic quantisation of the public model on CPU, for the ``quantize`` benchmark (issue 10 §2).

``torch.ao.quantization.quantize_dynamic`` replaces chosen ``torch.nn.Linear`` layers with int8
versions: weights int8 with one scale per output channel, activations quantised on the fly (one
scale per tensor), int32 accumulation, float32 output. CPU only (fbgemm / qnnpack).

Why this lives in bench/ and not in the library: on SmolLM2-135M, quantising every Linear layer
lowers the forced-token log p of real texts by about 1 nat/token (the MLP ``down_proj`` inputs
carry outlier activations that a per-tensor int8 activation scale flattens), and the layer
subsets that keep log p within a few hundredths of a nat give no measurable speed-up on this CPU
(docs/text-bench.md, ``python bench/text.py quantize``). An option that costs that much utility
for no speed would be a trap, so ``dpsynth.text.generate`` has no ``quantize`` parameter.
"""

from __future__ import annotations

import torch

#: layer subsets measured by the benchmark: name -> predicate on the module's qualified name
LAYER_SETS = {
    "all Linear": lambda name: True,
    "all but down_proj and lm_head": lambda name: "down_proj" not in name and name != "lm_head",
    "attention projections only": lambda name: "self_attn" in name,
}


def quantize_int8(model: torch.nn.Module, layers: str = "all Linear") -> torch.nn.Module:
    """An int8 dynamically quantised copy of ``model`` (the input is untouched); CPU models only."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 dynamic quantisation runs on CPU only")
    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "fbgemm" if "fbgemm" in engines else "qnnpack"
    keep = LAYER_SETS[layers]
    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and keep(name)
    }
    return quantize_dynamic(model, spec, dtype=torch.qint8).eval()
