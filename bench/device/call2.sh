set -x
source bench/device/env.sh
cat /tmp/dev/gguf.part00 .dev2/gguf.part01 > /tmp/dev/SmolLM2-135M-Instruct.Q4_1.gguf && rm /tmp/dev/gguf.part00
md5sum /tmp/dev/SmolLM2-135M-Instruct.Q4_1.gguf   # expect a1231443440b107ff29f02bdb38c9d0a
cp -r .dev2/data /tmp/dev/data && cp .dev2/m16.part00 /tmp/dev/
python3 - <<'PY'
import os, time
t = time.time()
from dpsynth.text.models import load_causal_lm
loaded = load_causal_lm(os.environ["DPSYNTH_BENCH_MODEL"], device="cuda")
print("loaded", loaded.name, loaded.device, next(loaded.model.parameters()).dtype, round(time.time() - t, 1), "s")
from dpsynth.text.pe.generator import EngineGenerator
gen = EngineGenerator(loaded, max_new_tokens=32, temperature=1.0, top_k=200, max_rows=1024, progress=False)
t = time.time(); out = gen(["Write one short movie review snippet."] * 512); print("512 public texts in", round(time.time() - t, 2), "s:", out[:3])
t = time.time(); out = gen(["Write one short movie review snippet."] * 512); print("again 512 in", round(time.time() - t, 2), "s")
PY
ls -la /tmp/dev
