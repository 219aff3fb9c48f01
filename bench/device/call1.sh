set -x
source bench/device/env.sh
cp .dev1/gguf.part00 /tmp/dev/
nproc; free -g | head -2; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
python3 - <<'PY'
import time; t=time.time()
import torch, transformers, sentence_transformers, sklearn, pandas
print("torch", torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0), "transformers", transformers.__version__, "st", sentence_transformers.__version__, "sklearn", sklearn.__version__, "pandas", pandas.__version__)
import dp_accounting, gguf, cryptography
import dpsynth.text, dpsynth.text.pe.run, dpsynth.evaluate.text_metrics
from dpsynth.text.pe.privacy import calibrate_pe
print("calibrate_pe(3,1e-6,3)", calibrate_pe(3.0, 1e-6, 3))
print("imports ok", round(time.time()-t,1), "s")
PY
ls -la /tmp/dev
