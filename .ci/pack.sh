#!/usr/bin/env bash
# Packs the libraries (MLNet.Lora.Core, MLNet.Lora, MLNet.Lora.Charts, MLNet.Lora.Onnx) into a folder, default
# artifacts/packages. MLNet.Lora depends on MLNet.Lora.Core, so they travel together. (The command-line tool is packed
# per platform by .ci/cli-tool.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/packages}
for project in MLNet.Lora.Core MLNet.Lora MLNet.Lora.Charts MLNet.Lora.Onnx; do
  dotnet pack "src/$project" -c Release -o "$out"
done
