#!/usr/bin/env bash
# Create a virtual environment with the real lmms-eval 0.7.3 harness and this project, for
# tests/test_lmms_eval_harness.py (which finds its python through LMMS_EVAL_PYTHON, or runs this
# script itself into .cache/lmms-eval-venv).
#
#     .ci/lmms_eval_env.sh DIR        # then: export LMMS_EVAL_PYTHON=DIR/bin/python
#
# A venv of its own: lmms-eval's requirements would move the project venv's torch (2.13 -> 2.14)
# and add torchvision. Here torch 2.13.0 goes first (a CPU build on this disk), lmms-eval without
# its dependencies, then its dependencies minus torchvision and timm (which needs torchvision):
# the torchvision wheel for torch 2.13 is a CUDA build that breaks transformers' image utilities
# next to the CPU torch ("operator torchvision::nms does not exist"). filelock<4: lmms-eval 0.7.3
# imports filelock._api. The project itself (for its processor) comes last, with its
# dependencies but not its dev extras.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR  (creates a virtual environment with lmms-eval 0.7.3 at DIR)" >&2
    exit 2
fi
dir="$1"
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
LMMS_EVAL_VERSION="0.7.3"  # real-clients.md: the release our task folder is checked against
TORCH_VERSION="2.13.0"  # stack-notes: the CPU build on this disk

"$python" -m venv "$dir"
pip=("$dir/bin/python" -m pip install --quiet)
"${pip[@]}" "torch==$TORCH_VERSION" packaging  # packaging: to read the requirements below
"${pip[@]}" --no-deps "lmms-eval==$LMMS_EVAL_VERSION"
mapfile -t requirements < <("$dir/bin/python" - <<'PY'
from importlib.metadata import requires
from packaging.requirements import Requirement

LEFT_OUT = {"torchvision", "timm"}  # CUDA-only torchvision for torch 2.13; timm imports it
for line in requires("lmms-eval") or []:
    requirement = Requirement(line)
    if requirement.marker is None and requirement.name.lower() not in LEFT_OUT:
        print(requirement)
PY
)
"${pip[@]}" "torch==$TORCH_VERSION" "filelock<4" "${requirements[@]}" -e "$repo"
if "$dir/bin/python" -c "import torchvision" 2>/dev/null; then
    echo "error: torchvision got into $dir; it breaks transformers next to the CPU torch" >&2
    exit 1
fi
"$dir/bin/python" -c "import lmms_eval, model_training.processor"
echo "lmms-eval $LMMS_EVAL_VERSION environment ready: $dir/bin/python"
