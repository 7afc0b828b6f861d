#!/usr/bin/env bash
# The GPU table of docs/performance.md in one command: tools/bench_train.py --devices 1,all for ResNet-18
# and ResNet-50 (ImageNet stem) at 224 px, batch 128 pairs per GPU, float32, mixed_float16 and
# mixed_bfloat16, XLA off and on, on one GPU and on all visible GPUs (MirroredStrategy).
#
#   tools/bench_gpu.sh [OUT_DIR]        # default bench_gpu/; writes OUT_DIR/<backbone>.{log,json} and OUT_DIR/gpu_table.md
#
# Environment: METHODS (default every method, e.g. METHODS=simclr,stl), PRECISIONS (default
# float32,mixed_float16,mixed_bfloat16), DEVICES (default 1,all), BATCH (default 128), SIZE (default 224),
# BACKBONES (default "resnet18 resnet50"), PYTHON (default python). Extra arguments go to bench_train.py
# through BENCH_ARGS (e.g. BENCH_ARGS="--steps 10 --repeats 3").
set -euo pipefail

out=${1:-bench_gpu}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
table="$out/gpu_table.md"
: > "$table"
for backbone in ${BACKBONES:-resnet18 resnet50}; do
  args=(--devices "${DEVICES:-1,all}" --precision "${PRECISIONS:-float32,mixed_float16,mixed_bfloat16}"
        --backbone "$backbone" --backbone-stem imagenet --size "${SIZE:-224}" --batch "${BATCH:-128}"
        --json "$out/$backbone.json")
  [ -n "${METHODS:-}" ] && args+=(--methods "$METHODS")
  # shellcheck disable=SC2086  # BENCH_ARGS: several words on purpose
  "${PYTHON:-python}" "$here/bench_train.py" "${args[@]}" ${BENCH_ARGS:-} | tee "$out/$backbone.log"
  {
    echo "## $backbone"
    echo
    echo '```'
    echo "${PYTHON:-python} tools/bench_train.py ${args[*]} ${BENCH_ARGS:-}"
    echo '```'
    echo
    # the report: from its title to the total time (the lines before it are progress), as Markdown: a blank
    # line before each table, a line break (two spaces) after each line of text
    sed -n '/^Training throughput per device setting/,/^total /p' "$out/$backbone.log" |
      awk '/^\| method/ { print "" } /^\|/ { print; next } { print $0 "  " }'
    echo
  } >> "$table"
done
echo "wrote $table"
