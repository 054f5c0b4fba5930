#!/usr/bin/env bash
# cnnjit's side of BENCHMARKS.md: `cnnjit bench --json` on every case of
# scripts/bench_peers.py, on 1 and 2 threads, with the native AVX2 tile and in
# pure Cranelift; the reference kernels are timed once per case (1 thread).
# Run it right after `bench_peers.py` on a quiet machine so both sides share
# one run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=${1:-scripts/cnnjit_bench.jsonl}
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
)
for case in "${cases[@]}"; do
  read -r name file net <<< "$case"
  for variant in native pure; do
    for threads in 1 2; do
      flags=(--threads "$threads" --json)
      [[ $variant == pure ]] && flags+=(--pure-cranelift)
      [[ $variant == pure || $threads == 2 ]] && flags+=(--no-reference)
      json=$(./target/release/cnnjit bench "$file" --net "$net" "${flags[@]}" 2>/dev/null)
      echo "{\"case\": \"$name\", \"variant\": \"$variant\", \"result\": $(echo "$json" | tr -d '\n')}" >> "$out"
      echo "$name $variant t$threads: $(echo "$json" | tr -d '\n ' | cut -c1-160)"
    done
  done
done
