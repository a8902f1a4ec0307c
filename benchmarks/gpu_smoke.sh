#!/usr/bin/env bash
# One-GPU smoke test of the multi-GPU path (issue 9, item 10): at most 10 minutes, no Hub access.
#
#   bash benchmarks/gpu_smoke.sh [WORKDIR]          # from the repository root, on a CUDA machine
#
# Steps (each timed, each with its own time limit; the summary at the end says which passed):
#   env       python, torch, CUDA device, transformers/trl/accelerate, deepspeed and vllm presence
#   model     a random Qwen2.5-VL at the 7B width (hidden 3584, MLP 18944, 28/4 heads, vision
#             1280 wide) with 2 text and 2 vision layers, and the tiny model's processor
#   data      a small synthetic CT-RATE-VQA (24 phantom cases, 256 px)
#   chain     python -m model_training.run under recipes/accelerate/zero2.yaml with one process:
#             SFT 3 steps, GRPO 3 steps (llm_mlp, bf16), evaluation of 32 rows in think mode
#   resume    --resume keeps every finished step; --grpo.max_steps 4 continues from checkpoint 3
#             to step 4 (the weight-equality checks of a resume run on CPU in the tests)
#   grpo_step benchmarks/grpo_step.py at the full 7B shape, 2 measured steps (tokens/s, MFU)
#   eval      evaluation timing: 32 rows, think mode, HF generate (samples/s)
#   vllm      the same 32 rows with --backend vllm, where vllm is installed
# Without deepspeed, the chain runs under plain accelerate (one process) and says so.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${1:-$(mktemp -d /tmp/gpu-smoke.XXXXXX)}
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_UPDATE_DOWNLOAD_COUNTS=0
mkdir -p "$WORK"
declare -a SUMMARY=()
DEADLINE=$((SECONDS + ${SMOKE_SECONDS:-580}))  # the whole script stays under 10 minutes

step() {  # step NAME SECONDS COMMAND...: run, time, record (limit cut to the time left)
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - SECONDS))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -le 5 ]; then
        SUMMARY+=("$(printf '%-10s %s' "$name" "not run: the 10-minute budget is spent")")
        return 124
    fi
    echo "=== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    local took=$((SECONDS - start))
    SUMMARY+=("$(printf '%-10s %-6s %4ds' "$name" "$([ $rc -eq 0 ] && echo ok || echo "rc=$rc")" "$took")")
    echo "=== $name: exit $rc after ${took}s"
    return $rc
}

step env 60 "$PY" - <<'EOF'
import importlib.util, torch, transformers, trl, accelerate
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**30, "GiB")
print("transformers", transformers.__version__, "trl", trl.__version__, "accelerate", accelerate.__version__)
for name in ("deepspeed", "vllm", "flash_attn"):
    print(name, "installed" if importlib.util.find_spec(name) else "NOT installed")
assert torch.cuda.is_available(), "no CUDA device"
EOF
[ $? -eq 0 ] || { echo "no usable CUDA environment; stopping"; exit 1; }

step model 90 "$PY" - "$WORK/model" <<'EOF'
import sys
from pathlib import Path
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from model_training.processor import load_processor
from model_training.tiny_model import build_tiny_model

out = Path(sys.argv[1])
tiny = build_tiny_model(out.parent / "tiny", max_pixels=512 * 512)
config = Qwen2_5_VLConfig.from_pretrained(tiny)
text = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 2,
        "num_attention_heads": 28, "num_key_value_heads": 4,
        "layer_types": ["full_attention"] * 2}
config.text_config.update(text)
config.text_config.rope_parameters["mrope_section"] = [16, 24, 24]  # head_dim 128
config.vision_config.update({"depth": 2, "hidden_size": 1280, "intermediate_size": 3420,
                             "num_heads": 16, "out_hidden_size": 3584,
                             "fullatt_block_indexes": [1]})
with torch.device("cuda"):
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
model.generation_config = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny).generation_config
model.save_pretrained(out)
load_processor(tiny).save_pretrained(out)
print(f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters -> {out}")
EOF

step data 90 "$PY" -m dataset_builder build --synthetic 24 --synthetic-size 256 \
    --synthetic-slices 24 --out "$WORK/ds" --no-progress

ACCEL=()
if "$PY" -c "import deepspeed" 2>/dev/null; then
    ACCEL=(--accelerate_config recipes/accelerate/zero2.yaml --num_processes 1)
else
    echo "deepspeed is not installed: the chain runs without ZeRO (plain accelerate, 1 process)"
    ACCEL=(--num_processes 1)
fi
cat >"$WORK/recipe.yaml" <<EOF
output_dir: $WORK/run
model_name_or_path: $WORK/model
dataset_name: $WORK/ds
dataset_config: zoom
trainable_scope: llm_mlp
prompt_mode: think
dtype: bfloat16
bf16: true
activation_checkpointing: true
report_to: none
logging_steps: 1
save_strategy: steps
save_steps: 1
eval_modes: think
eval_limit: 32
eval_batch_size: 16
eval_max_new_tokens: 64
sft:
  max_steps: 3
  per_device_train_batch_size: 4
  learning_rate: 1.0e-5
  assistant_only_loss: true
  max_length: null
  sft_target: finding
grpo:
  max_steps: 3
  num_generations: 4
  per_device_train_batch_size: 4
  max_completion_length: 64
  loss_type: grpo
  beta: 0.04
  learning_rate: 1.0e-6
EOF
step chain 200 "$PY" -m model_training.run --config "$WORK/recipe.yaml" "${ACCEL[@]}"

step resume 120 bash -c "
  set -e
  '$PY' -m model_training.run --config '$WORK/recipe.yaml' ${ACCEL[*]} --resume
  '$PY' -m model_training.run --config '$WORK/recipe.yaml' ${ACCEL[*]} --resume \
      --stage grpo --grpo.max_steps 4
  '$PY' - '$WORK/run/grpo' <<'PYEOF'
import json, sys
from pathlib import Path
log = json.loads((Path(sys.argv[1]) / 'training_summary.json').read_text())['log_history']
steps = [e['step'] for e in log if 'loss' in e]
print('GRPO logged steps after resume:', steps)
assert steps[-1] == 4 and 3 in steps, steps
PYEOF
"

step grpo_step 240 "$PY" benchmarks/grpo_step.py --steps 2 --warmup 1 --json "$WORK/grpo_step.json"

step eval 60 "$PY" -m model_training.evaluation.evaluate --model "$WORK/run/final" --dataset "$WORK/ds" \
    --mode think --limit 32 --batch-size 16 --max-new-tokens 64 --output-dir "$WORK/eval-hf"

if "$PY" -c "import vllm" 2>/dev/null; then
    step vllm 150 "$PY" -m model_training.evaluation.evaluate --backend vllm --model "$WORK/run/final" \
        --dataset "$WORK/ds" --mode think --limit 32 --max-new-tokens 64 \
        --output-dir "$WORK/eval-vllm"
else
    SUMMARY+=("vllm       not installed: skipped")
fi

echo
echo "=== gpu_smoke summary (work folder $WORK)"
printf '%s\n' "${SUMMARY[@]}"
