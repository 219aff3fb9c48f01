# assemble MiniLM (fp16 parts -> fp32 file), then the benchmark runs; logs to $OUT
source bench/device/env.sh
O=${OUT:-/tmp/devout}; mkdir -p $O
cp -r .dev3/minilm /tmp/dev/minilm
cat /tmp/dev/m16.part00 .dev3/m16.part01 .dev3/m16.part02 > /tmp/dev/m16.safetensors
md5sum /tmp/dev/m16.safetensors  # expect 2787c277cbf7cf03f18a935f1ab7068f
python3 - <<'PY'
import torch
from safetensors.torch import load_file, save_file
sd = load_file("/tmp/dev/m16.safetensors")
save_file({k: (v.long() if k.endswith("position_ids") else v.float()).contiguous() for k, v in sd.items()}, "/tmp/dev/minilm/model.safetensors")
print("minilm fp32 written", len(sd))
PY
B="python3 bench/text.py"
GRID="--per-label ${PER:-100} --private-per-label ${PRIV:-2500} --test-per-label ${TEST:-200} --tokens 32 --skip-public --quiet"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
# A: PE at eps 3, the issue's size, alone on the machine (its wall time is the speed number)
timeout ${TA:-150} $B compare $GRID --iterations 3 --variations 2 --threads 4 --corpus rt --seed 0 --epsilons 3 --methods pe > $O/a_pe_rt0_e3.log 2>&1; echo "A rc=$?"
tail -4 $O/a_pe_rt0_e3.log
# B..E side by side (their wall times are not clean: they share the GPU and CPUs)
timeout ${TB:-300} $B compare $GRID --threads 3 --corpus rt --seed 0 --epsilons 1 10 --methods private_prediction > $O/b_pp_rt0.log 2>&1 &
timeout ${TB:-300} $B compare $GRID --threads 3 --corpus convention --seed 0 --epsilons 1 10 --methods private_prediction > $O/c_pp_conv0.log 2>&1 &
timeout ${TB:-300} $B pe-trace --per-label ${PER:-100} --private-per-label ${PRIV:-2500} --test-per-label ${TEST:-200} --threads 3 --corpus convention --seed 0 --epsilon 3 --iterations ${IT:-10} --variations 4 --top-k 200 > $O/d_trace_conv0.log 2>&1 &
timeout ${TB:-300} $B pe-trace --per-label ${PER:-100} --private-per-label ${PRIV:-2500} --test-per-label ${TEST:-200} --threads 3 --corpus rt --seed 0 --epsilon 3 --iterations ${IT:-10} --variations 4 --top-k 200 > $O/e_trace_rt0.log 2>&1 &
timeout ${TB:-300} $B pe-trace --per-label ${PER:-100} --private-per-label ${PRIV:-2500} --test-per-label ${TEST:-200} --threads 2 --corpus rt --seed 0 --epsilon 3 --iterations 3 --variations 2 --initial-per-label ${POOL:-3000} --top-k 200 > $O/f_trace_rt0_pool.log 2>&1 &
timeout ${TB:-300} $B pe-trace --per-label ${PER:-100} --private-per-label ${PRIV:-2500} --test-per-label ${TEST:-200} --threads 2 --corpus convention --seed 0 --epsilon 3 --iterations 3 --variations 2 --initial-per-label ${POOL:-3000} --top-k 200 > $O/g_trace_conv0_pool.log 2>&1 &
wait
for f in $O/*.log; do echo "== $f"; tail -25 $f; done
