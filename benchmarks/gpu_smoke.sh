#!/usr/bin/env bash
# One-GPU smoke test of the multi-GPU path (issue 9, item 10), sized for its machine (issue 18,
# item 6): one H100 80 GB / H200, 64 GiB disk, at most 10 minutes a command, no Hub access.
#
#   bash benchmarks/gpu_smoke.sh [--plan] [WORKDIR]     # from anywhere, on a CUDA machine
#   SMOKE_DEVICE=cpu SMOKE_SHAPE=tiny bash benchmarks/gpu_smoke.sh   # the chain on the CPU
#
# Steps, in this order (each timed, each under its own limit; the summary says which passed,
# how long each took and how large the work folder was after it):
#   required  env       python, torch, CUDA device, transformers/trl/accelerate, deepspeed, vllm
#             model     a random Qwen2.5-VL at the 7B width (hidden 3584, MLP 18944, 28/4 heads,
#                       vision 1280 wide) with 2 text and 2 vision layers, and the tiny model's
#                       processor (SMOKE_SHAPE=tiny: the tiny model itself)
#             data      a small synthetic CT-RATE-VQA (24 phantom cases, 256 px, 24 slices)
#             chain     python -m model_training.run under recipes/accelerate/zero2.yaml with one
#                       process (plain accelerate without deepspeed): SFT 3 steps, GRPO 3 steps
#                       (llm_mlp, bf16), evaluation of 32 rows in think mode; checkpoints every
#                       step with save_total_limit 1
#             resume    --resume keeps every finished step; --grpo.max_steps 4 continues from
#                       checkpoint 3 to step 4. Then the checkpoints are deleted (no later step
#                       reads them).
#   optional  vllm      the 32 rows with --backend vllm (first: it never ran before issue 18)
#             grpo_step benchmarks/grpo_step.py at the full 7B shape, 2 measured steps
#             eval      evaluation timing: 32 rows, think mode, HF generate (samples/s)
# A step that needs a failed one is skipped; vllm is skipped where it is not installed.
#
# Time budget: the steps share a deadline of SMOKE_SECONDS (580 s), which leaves the script's
# own overhead and cleanup inside 10 minutes. Limits: env 30, model 45, data 25, chain 200,
# resume 90 (required: 390 s), vllm 120, grpo_step 150, eval 40. Going down that list, a step is
# "planned" when its limit fits in the deadline (less 10 s of overhead) next to the planned steps
# before it: the planned limits add up to no more than the deadline (550 of 580 s here, with
# grpo_step not planned). A planned step always gets its time; one that is not runs only when
# the steps before it finished early enough to leave its whole limit next to the time kept for
# the planned steps after it (e.g. grpo_step when vllm is not installed), and is otherwise
# skipped, saying so. `--plan` (or SMOKE_PLAN_ONLY=1) prints the plan and the disk check and
# exits, creating nothing.
#
# Disk budget: at the start the script prints the free disk of the work folder (df) and its
# estimate of the peak the steps use: random model + dataset + 3 saved models (sft/, grpo/,
# final/) + the larger of 3 checkpoints (sft keeps 1, grpo holds 2 while saving the next one) and
# grpo_step's random 7B checkpoint (16.6 GB), plus 10 %. A checkpoint of the 7B-width model is
# 7.1 GB under DeepSpeed (bf16 weights twice, fp32 master + Adam state for the 0.41 B llm_mlp
# parameters) and 5.5 GB without (fp32 weights + Adam state): the estimate is 25-27 GiB, where
# saving every step without save_total_limit and keeping grpo_step's model once took 63-73 GB.
# Below the estimate it refuses to start (exit 2, one line). SMOKE_PEAK_MB replaces the
# estimate. (MB here: 2^20 bytes, on both sides of the comparison.)
#
# Cleanup: without WORKDIR the work folder is `mktemp -d ${TMPDIR:-/tmp}/gpu-smoke.XXXXXX` and a
# trap on EXIT removes it, whatever the outcome. A WORKDIR you name is yours: it must be new or
# empty (one that already holds files is refused, exit 2, and never deleted) and it is kept with
# the results (model/, ds/, run/, eval-*/), less the scratch folder WORKDIR/tmp (TMPDIR, the
# datasets cache and, unless VLLM_CACHE_ROOT is set, vLLM's cache of every step; grpo_step's
# random 7B checkpoint goes there and grpo_step removes it itself) and the checkpoints.
#
# CPU mode (CI has no GPU; tests/test_gpu_smoke_script.py): SMOKE_DEVICE=cpu runs the chain with
# use_cpu, fp32 and no activation checkpointing, and skips the GPU-only steps (vllm, grpo_step);
# SMOKE_SHAPE=tiny uses the tiny model (model_training.tiny_model). Sizes (defaults GPU / CPU):
# SMOKE_CASES 24/6, SMOKE_SIZE 256/64, SMOKE_SLICES 24/16, SMOKE_EVAL_LIMIT 32/4,
# SMOKE_NEW_TOKENS 64/12, SMOKE_SFT_STEPS 3/2, SMOKE_GRPO_STEPS 3/2, SMOKE_EVAL_BASE true/false
# (the chain evaluates the random start model too). PYTHON names the python.
set -uo pipefail
PLAN_ONLY=${SMOKE_PLAN_ONLY:-0}
WORKDIR=""
for arg in "$@"; do
    case $arg in
        --plan) PLAN_ONLY=1 ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "gpu_smoke: unknown option $arg (--plan, --help)" >&2; exit 2 ;;
        *) WORKDIR=$arg ;;
    esac
done
case $WORKDIR in "" | /*) ;; *) WORKDIR="$PWD/$WORKDIR" ;; esac  # relative to where it was run
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
PY=${PYTHON:-python3}

DEVICE=${SMOKE_DEVICE:-cuda}
SHAPE=${SMOKE_SHAPE:-7b-width}
case $DEVICE in cuda | cpu) ;; *) echo "gpu_smoke: SMOKE_DEVICE=$DEVICE: cuda or cpu" >&2; exit 2 ;; esac
case $SHAPE in 7b-width | tiny) ;; *) echo "gpu_smoke: SMOKE_SHAPE=$SHAPE: 7b-width or tiny" >&2; exit 2 ;; esac
if [ "$DEVICE" = cpu ]; then small=1; else small=0; fi
pick() { if [ "$small" = 1 ]; then echo "$2"; else echo "$1"; fi; }  # pick GPU CPU
CASES=${SMOKE_CASES:-$(pick 24 6)}
SIZE=${SMOKE_SIZE:-$(pick 256 64)}
SLICES=${SMOKE_SLICES:-$(pick 24 16)}
EVAL_LIMIT=${SMOKE_EVAL_LIMIT:-$(pick 32 4)}
NEW_TOKENS=${SMOKE_NEW_TOKENS:-$(pick 64 12)}
SFT_STEPS=${SMOKE_SFT_STEPS:-$(pick 3 2)}
GRPO_STEPS=${SMOKE_GRPO_STEPS:-$(pick 3 2)}
EVAL_BASE=${SMOKE_EVAL_BASE:-$(pick true false)}  # the chain also evaluates the random model

has_module() { "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('$1') is None)" 2>/dev/null; }
DEEPSPEED=0
[ "$DEVICE" = cuda ] && has_module deepspeed && DEEPSPEED=1
VLLM=0
has_module vllm && VLLM=1

# -- time budget -------------------------------------------------------------------------------
DEADLINE_S=${SMOKE_SECONDS:-580}  # all steps; the script's cleanup follows, inside 10 minutes
OVERHEAD_S=10                     # du, df and checks between steps
ORDER=(env model data chain resume vllm grpo_step eval)
declare -A LIMIT=([env]=30 [model]=45 [data]=25 [chain]=200 [resume]=90
                  [vllm]=120 [grpo_step]=150 [eval]=40)
declare -A KIND=([env]=required [model]=required [data]=required [chain]=required
                 [resume]=required [vllm]=optional [grpo_step]=optional [eval]=optional)
declare -A PLANNED=() START_BY=()
PLANNED_S=0
for name in "${ORDER[@]}"; do
    if [ $((PLANNED_S + LIMIT[$name])) -le $((DEADLINE_S - OVERHEAD_S)) ]; then
        PLANNED[$name]=1
        START_BY[$name]=$PLANNED_S
        PLANNED_S=$((PLANNED_S + LIMIT[$name]))
    else
        PLANNED[$name]=0
    fi
done

# -- disk budget (bytes) -----------------------------------------------------------------------
if [ "$SHAPE" = tiny ]; then
    PARAMS=234848 TRAINABLE=49152 MODEL_BYTES=4  # the tiny model is saved in fp32
else
    PARAMS=555911280 TRAINABLE=407371776 MODEL_BYTES=2  # trainable: llm_mlp
fi
if [ "$DEEPSPEED" = 1 ]; then  # recipe dtype bf16; DeepSpeed saves its own copy of the weights
    SAVED=$((2 * PARAMS)) CHECKPOINT=$((2 * PARAMS + 2 * PARAMS + 12 * TRAINABLE))
else  # model_training.policy: float32 master weights without DeepSpeed; AdamW m and v
    SAVED=$((4 * PARAMS)) CHECKPOINT=$((4 * PARAMS + 8 * TRAINABLE))
fi
RANDOM_MODEL=$((MODEL_BYTES * PARAMS))
DATA=$((4 * CASES * SIZE * SIZE * SLICES + 8 * 2 ** 20))  # build + its cache + datasets cache
GRPO_STEP_MODEL=0
[ "$DEVICE" = cuda ] && GRPO_STEP_MODEL=$((2 * 8292166656))  # the 7B shape in bf16
OTHER=$((64 * 2 ** 20))  # processors, evaluation outputs, logs, recipes
LARGEST=$((3 * CHECKPOINT > GRPO_STEP_MODEL ? 3 * CHECKPOINT : GRPO_STEP_MODEL))
PEAK=$(((RANDOM_MODEL + DATA + 3 * SAVED + LARGEST + OTHER) * 11 / 10))
mb() { echo $((($1 + 2 ** 20 - 1) / 2 ** 20)); }
PEAK_MB=${SMOKE_PEAK_MB:-$(mb "$PEAK")}

if [ -n "$WORKDIR" ]; then  # df where the folder is, or would be
    DF_DIR=$WORKDIR
    while [ ! -d "$DF_DIR" ]; do DF_DIR=$(dirname "$DF_DIR"); done
else
    DF_DIR=${TMPDIR:-/tmp}
fi
FREE_MB=$(($(df -Pk "$DF_DIR" | awk 'NR == 2 {print $4}') / 1024))

echo "=== gpu_smoke plan: device $DEVICE, shape $SHAPE, deepspeed $([ $DEEPSPEED = 1 ] && echo yes || echo no), vllm $([ $VLLM = 1 ] && echo yes || echo no); deadline ${DEADLINE_S}s"
printf '    %-10s %6s  %-8s  %s\n' step limit kind budget
declare -A KNOWN_SKIP=()
if [ "$DEVICE" = cpu ]; then
    KNOWN_SKIP=([vllm]="CPU mode (SMOKE_DEVICE=cpu): needs a GPU"
                [grpo_step]="CPU mode (SMOKE_DEVICE=cpu): needs a GPU")
elif [ "$VLLM" = 0 ]; then
    KNOWN_SKIP=([vllm]="vllm is not installed")
fi
for name in "${ORDER[@]}"; do
    if [ "${PLANNED[$name]}" = 1 ]; then
        when="planned, starts by ${START_BY[$name]}s"
    else
        when="if time is left: runs only when earlier steps leave it ${LIMIT[$name]}s"
    fi
    [ -n "${KNOWN_SKIP[$name]:-}" ] && when+="; will be skipped: ${KNOWN_SKIP[$name]}"
    printf '    %-10s %5ss  %-8s  %s\n' "$name" "${LIMIT[$name]}" "${KIND[$name]}" "$when"
done
echo "    planned limits: ${PLANNED_S}s of the ${DEADLINE_S}s deadline (${OVERHEAD_S}s kept for overhead)"
echo "=== disk: free ${FREE_MB} MB in $DF_DIR; peak estimate ${PEAK_MB} MB" \
    "(random model $(mb $RANDOM_MODEL) + dataset $(mb $DATA) + 3 saved models $(mb $((3 * SAVED)))" \
    "+ max(3 checkpoints $(mb $((3 * CHECKPOINT))), grpo_step's 7B model $(mb $GRPO_STEP_MODEL))" \
    "+ other $(mb $OTHER), + 10 %)$([ -n "${SMOKE_PEAK_MB:-}" ] && echo "; SMOKE_PEAK_MB=$SMOKE_PEAK_MB")"
if [ "$PLAN_ONLY" = 1 ]; then
    [ "$FREE_MB" -ge "$PEAK_MB" ] && echo "    enough disk" || echo "    NOT enough disk: a run would refuse to start"
    exit 0
fi
if [ "$FREE_MB" -lt "$PEAK_MB" ]; then
    echo "gpu_smoke: only ${FREE_MB} MB free in $DF_DIR, the steps need about ${PEAK_MB} MB at their peak; free disk or point TMPDIR or WORKDIR at a larger disk" >&2
    exit 2
fi

# -- the work folder and its cleanup -------------------------------------------------------------
OWN_WORK=0
if [ -n "$WORKDIR" ]; then
    if [ -e "$WORKDIR" ] && [ -n "$(ls -A "$WORKDIR" 2>/dev/null)" ]; then
        echo "gpu_smoke: WORKDIR $WORKDIR already holds files: name a new or empty folder (the run writes model/, ds/, run/ there and keeps it)" >&2
        exit 2
    fi
    mkdir -p "$WORKDIR" || exit 1
    WORK=$(cd "$WORKDIR" && pwd)
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-smoke.XXXXXX") || exit 1
    OWN_WORK=1
fi
# shellcheck disable=SC2317  # called by the traps
cleanup() {
    rm -rf "$WORK/tmp"
    if [ "$OWN_WORK" = 1 ]; then
        rm -rf "$WORK"
        echo "=== removed the work folder $WORK"
    else
        echo "=== kept the work folder $WORK (WORKDIR; its scratch folder tmp/ is removed)"
    fi
}
# shellcheck disable=SC2317
stop() {  # INT/TERM: stop the running step (timeout passes the signal on to its processes)
    if [ -n "$STEP_PID" ]; then
        kill -TERM "$STEP_PID" 2>/dev/null
        wait "$STEP_PID"
    fi
    echo "=== stopped by a signal"
    exit "$1"
}
STEP_PID=""
trap cleanup EXIT
trap 'stop 130' INT
trap 'stop 143' TERM
mkdir -p "$WORK/tmp/datasets-cache"
echo "=== work folder $WORK"

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_UPDATE_DOWNLOAD_COUNTS=0
export TMPDIR="$WORK/tmp" HF_DATASETS_CACHE="$WORK/tmp/datasets-cache"  # scratch: removed at exit
export VLLM_CACHE_ROOT=${VLLM_CACHE_ROOT:-$WORK/tmp/vllm-cache}

# -- running a step ----------------------------------------------------------------------------
declare -a SUMMARY=()
declare -A STATUS=()
DEADLINE=$((SECONDS + DEADLINE_S))
RESERVED=$PLANNED_S  # seconds kept for the planned steps not decided yet

work_mb() { du -sk "$WORK" 2>/dev/null | awk '{printf "%.1f", $1 / 1024}'; }
checkpoints() {  # the checkpoint folders of each stage: "sft 1 (checkpoint-3), grpo 1 (...)"
    local stage names out=""
    for stage in sft grpo; do
        names=$(cd "$WORK/run/$stage" 2>/dev/null && find . -maxdepth 1 -type d -name 'checkpoint-*' \
            | sed 's|^\./||' | sort | paste -sd' ' -)
        out+="${out:+, }$stage $(wc -w <<<"$names" | tr -d ' ') (${names})"
    done
    echo "checkpoints: $out"
}
record() {  # record NAME STATUS TOOK NOTE
    STATUS[$1]=$2
    SUMMARY+=("$(printf '%-10s %-8s %6s %10s  %s' "$1" "$2" "$3" "$(work_mb) MB" "$4")")
}
needs() {  # needs STEP...: why a step cannot run ("" when every step it needs is ok)
    local name
    for name in "$@"; do
        [ "${STATUS[$name]:-}" = ok ] || { echo "needs the $name step (${STATUS[$name]:-not run})"; return; }
    done
}

summary() {
    echo
    echo "=== gpu_smoke summary (work folder $WORK; ${SECONDS}s; disk: the work folder after each step)"
    printf '%-10s %-8s %6s %10s  %s\n' step status took disk note
    printf '%s\n' "${SUMMARY[@]}"
}

step() {  # step NAME WHY_NOT COMMAND...: run under its limit, time, record; WHY_NOT skips it
    local name=$1 why_not=$2 limit=${LIMIT[$1]}
    shift 2
    [ "${PLANNED[$name]}" = 1 ] && RESERVED=$((RESERVED - limit))
    local room=$((DEADLINE - SECONDS - RESERVED))
    if [ -z "$why_not" ] && [ "${PLANNED[$name]}" = 1 ]; then
        [ "$limit" -gt "$room" ] && limit=$room
        [ "$limit" -le 5 ] && why_not="the ${DEADLINE_S}s budget is spent"
    elif [ -z "$why_not" ] && [ "$limit" -gt "$room" ]; then
        why_not="not in the budget: needs ${limit}s, ${room}s left next to the later planned steps"
    fi
    if [ -n "$why_not" ]; then
        echo "=== $name: skipped: $why_not"
        record "$name" skipped - "$why_not"
        return 0
    fi
    echo "=== $name (limit ${limit}s): $*"
    local start=$SECONDS rc
    timeout "$limit" "$@" <&0 &  # in the background: a signal to the script stops it at once
    STEP_PID=$!
    wait "$STEP_PID"
    rc=$?
    STEP_PID=""
    local took=$((SECONDS - start)) note=""
    [ "$rc" -eq 124 ] && note="stopped at its ${limit}s limit"
    case $name in chain | resume) note+="${note:+; }$(checkpoints)" ;; esac
    record "$name" "$([ "$rc" -eq 0 ] && echo ok || echo "rc=$rc")" "${took}s" "$note"
    echo "=== $name: exit $rc after ${took}s; work folder $(work_mb) MB${note:+; $note}"
    return "$rc"
}

# -- the steps ---------------------------------------------------------------------------------
step env "" "$PY" - "$DEVICE" <<'EOF'
import importlib.util, sys, torch, transformers, trl, accelerate
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**30, "GiB")
print("transformers", transformers.__version__, "trl", trl.__version__, "accelerate", accelerate.__version__)
for name in ("deepspeed", "vllm", "flash_attn"):
    print(name, "installed" if importlib.util.find_spec(name) else "NOT installed")
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "no CUDA device (SMOKE_DEVICE=cpu runs the chain on the CPU)"
EOF
[ "${STATUS[env]}" = ok ] || { summary; echo "=== the env step did not pass: stopping"; exit 1; }

step model "" "$PY" - "$WORK/model" "$SHAPE" "$DEVICE" <<'EOF'
import sys
from pathlib import Path
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from model_training.processor import load_processor
from model_training.tiny_model import build_tiny_model

out, shape, device = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if shape == "tiny":
    build_tiny_model(out, max_pixels=512 * 512)
    sys.exit(0)
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
with torch.device(device):
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
model.generation_config = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny).generation_config
model.save_pretrained(out)
load_processor(tiny).save_pretrained(out)
print(f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters -> {out}")
EOF

step data "" "$PY" -m dataset_builder build --synthetic "$CASES" --synthetic-size "$SIZE" \
    --synthetic-slices "$SLICES" --out "$WORK/ds" --no-progress

ACCEL=(--num_processes 1)
if [ "$DEEPSPEED" = 1 ]; then
    ACCEL=(--accelerate_config recipes/accelerate/zero2.yaml --num_processes 1)
elif [ "$DEVICE" = cuda ]; then
    echo "deepspeed is not installed: the chain runs without ZeRO (plain accelerate, 1 process)"
fi
if [ "$DEVICE" = cuda ]; then
    PRECISION=$'dtype: bfloat16\nbf16: true\nactivation_checkpointing: true'
else
    PRECISION=$'use_cpu: true\nbf16: false\nactivation_checkpointing: false\ndataloader_num_workers: 0'
fi
cat >"$WORK/recipe.yaml" <<EOF
output_dir: $WORK/run
model_name_or_path: $WORK/model
dataset_name: $WORK/ds
dataset_config: zoom
trainable_scope: llm_mlp
prompt_mode: think
$PRECISION
report_to: none
logging_steps: 1
save_strategy: steps
save_steps: 1
save_total_limit: 1
eval_base_model: $EVAL_BASE
eval:
  mode: think
  limit: $EVAL_LIMIT
  batch_size: 16
  max_new_tokens: $NEW_TOKENS
sft:
  max_steps: $SFT_STEPS
  per_device_train_batch_size: 4
  learning_rate: 1.0e-5
  assistant_only_loss: true
  max_length: null
  sft_target: finding
grpo:
  max_steps: $GRPO_STEPS
  num_generations: 4
  per_device_train_batch_size: 4
  max_completion_length: $NEW_TOKENS
  loss_type: grpo
  beta: 0.04
  learning_rate: 1.0e-6
EOF
step chain "$(needs model data)" "$PY" -m model_training.run --config "$WORK/recipe.yaml" "${ACCEL[@]}"

step resume "$(needs chain)" bash -c "
  set -e
  '$PY' -m model_training.run --config '$WORK/recipe.yaml' ${ACCEL[*]} --resume
  '$PY' -m model_training.run --config '$WORK/recipe.yaml' ${ACCEL[*]} --resume \
      --stage grpo --grpo.max_steps $((GRPO_STEPS + 1))
  '$PY' - '$WORK/run/grpo' $GRPO_STEPS <<'PYEOF'
import json, sys
from pathlib import Path
log = json.loads((Path(sys.argv[1]) / 'training_summary.json').read_text())['log_history']
steps = [e['step'] for e in log if 'loss' in e]
last = int(sys.argv[2])
print('GRPO logged steps after resume:', steps)
assert steps[-1] == last + 1 and last in steps, steps
PYEOF
"
if compgen -G "$WORK/run/*/checkpoint-*" >/dev/null; then
    rm -rf "$WORK"/run/*/checkpoint-*
    echo "=== checkpoints removed (no later step reads them); work folder $(work_mb) MB"
fi

why=${KNOWN_SKIP[vllm]:-$(needs chain)}
step vllm "$why" "$PY" -m model_training.evaluation.evaluate --backend vllm \
    --model "$WORK/run/final" --dataset "$WORK/ds" --mode think --limit "$EVAL_LIMIT" \
    --max-new-tokens "$NEW_TOKENS" --output-dir "$WORK/eval-vllm"

why=${KNOWN_SKIP[grpo_step]:+${KNOWN_SKIP[grpo_step]} (its CPU check: tests/test_grpo_step_benchmark.py)}
step grpo_step "$why" "$PY" benchmarks/grpo_step.py --steps 2 --warmup 1 \
    --json "$WORK/grpo_step.json"

step eval "$(needs chain)" "$PY" -m model_training.evaluation.evaluate --model "$WORK/run/final" \
    --dataset "$WORK/ds" --mode think --limit "$EVAL_LIMIT" --batch-size 16 \
    --max-new-tokens "$NEW_TOKENS" --output-dir "$WORK/eval-hf"

summary
failed=0
for name in "${ORDER[@]}"; do
    case "${KIND[$name]}:${STATUS[$name]:-}" in
        required:ok | optional:ok | optional:skipped) ;;
        *) failed=1 ;;
    esac
done
exit "$failed"
