# sourced by every device call: wheels, paths, bench overrides
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/dev
if [ ! -d /tmp/site ] && [ -d .dev1/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .dev1/whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD
export DPSYNTH_BENCH_DEVICE=${DPSYNTH_BENCH_DEVICE:-cuda}
export DPSYNTH_BENCH_MODEL=${DPSYNTH_BENCH_MODEL:-/tmp/dev/SmolLM2-135M-Instruct.Q4_1.gguf}
export DPSYNTH_BENCH_MINILM=${DPSYNTH_BENCH_MINILM:-/tmp/dev/minilm}
export DPSYNTH_BENCH_DATA=${DPSYNTH_BENCH_DATA:-/tmp/dev/data}
