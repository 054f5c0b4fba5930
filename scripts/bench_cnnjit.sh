#!/usr/bin/env bash
# cnnjit's side of BENCHMARKS.md: `cnnjit bench --json` on every case of
# scripts/bench_peers.py, on 1 and 2 threads with the widest native ISA the
# host has and in pure Cranelift, and on 1 thread with the AVX2 tiles only (to
# compare ISAs); the reference kernels are timed once per case (1 thread).
# Run it right after `bench_peers.py --keep-onnx DIR` on a quiet machine so
# both sides share one run; torchvision's GoogLeNet is imported from DIR's
# `googlenet.onnx` (skipped without it).
#
# Usage: scripts/bench_cnnjit.sh [OUT.jsonl] [ONNX_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=${1:-scripts/cnnjit_bench.jsonl}
onnx_dir=${2:-}
: > "$out"
cases=(
  "conv3x3_56x56x128 benches/nets/layers.cnn Conv3x3_56"
  "conv3x3_28x28x256 benches/nets/layers.cnn Conv3x3_28"
  "mbv1_dwsep_112x112x32_to64 benches/nets/layers.cnn DwSep112"
  "conv1x3_3x1_28x28x192_to128 benches/nets/layers.cnn Conv1x3_3x1"
  "lenet5 examples/nets/lenet5.cnn LeNet5"
  "alexnet examples/nets/alexnet.cnn AlexNet"
  "mobilenet_v1 examples/nets/mobilenet_v1.cnn MobileNetV1"
  "resnet18 examples/nets/resnet.cnn ResNet18"
  "resnet50 examples/nets/resnet.cnn ResNet50"
  "vgg16 examples/nets/vgg16.cnn VGG16"
  "mobilenet_v2 examples/nets/mobilenet_v2.cnn MobileNetV2"
  "efficientnet_b0 examples/nets/efficientnet_b0.cnn EfficientNetB0"
)
if [[ -n $onnx_dir && -f $onnx_dir/googlenet.onnx ]]; then
  imported=$(mktemp -d)
  trap 'rm -rf "$imported"' EXIT
  ./target/release/cnnjit import "$onnx_dir/googlenet.onnx" -o "$imported/googlenet.cnn" --net GoogLeNet > /dev/null
  cases+=("googlenet $imported/googlenet.cnn GoogLeNet")
fi
for case in "${cases[@]}"; do
  read -r name file net <<< "$case"
  for run in "native 1" "native 2" "avx2 1" "pure 1" "pure 2"; do
    read -r variant threads <<< "$run"
    flags=(--threads "$threads" --json)
    case $variant in
      avx2) flags+=(--isa avx2 --no-reference) ;;
      pure) flags+=(--pure-cranelift --no-reference) ;;
      native) [[ $threads == 2 ]] && flags+=(--no-reference) ;;
    esac
    if ! json=$(./target/release/cnnjit bench "$file" --net "$net" "${flags[@]}" 2>/dev/null); then
      echo "$name $variant t$threads: skipped (this host lacks it, or the bench failed)"
      continue
    fi
    echo "{\"case\": \"$name\", \"variant\": \"$variant\", \"result\": $(echo "$json" | tr -d '\n')}" >> "$out"
    echo "$name $variant t$threads: $(echo "$json" | tr -d '\n ' | cut -c1-160)"
  done
done
