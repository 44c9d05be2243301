#!/usr/bin/env bash
# Runs examples/notebooks/LoraQuickstart.ipynb headless with dotnet-repl (a local tool, .config/dotnet-tools.json) against
# the packed MLNet.Lora; dotnet-repl exits with 2 when a cell throws, and so does this script (with the failing output).
# Usage: .ci/notebook.sh [folder holding MLNet.Lora.0.1.0.nupkg] (default artifacts/packages).
# The executed notebook is left in artifacts/notebook/LoraQuickstart.out.ipynb.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

packages=$(cd "${1:-artifacts/packages}" && pwd)
version=0.1.0
[[ -f "$packages/MLNet.Lora.$version.nupkg" ]] || { echo "notebook: no MLNet.Lora.$version.nupkg in $packages; run dotnet pack first"; exit 1; }

dotnet tool restore >/dev/null

# A rebuilt 0.1.0 would not replace the copy NuGet extracted earlier: drop the stale copies of this repository's packages (only those).
global=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: *//')
for id in mlnet.lora mlnet.lora.core mlnet.lora.charts mlnet.lora.onnx; do rm -rf "${global%/}/$id/$version"; done

out="$PWD/artifacts/notebook"
mkdir -p "$out"
rm -f "$out/LoraQuickstart.out.ipynb"
echo "notebook: running examples/notebooks/LoraQuickstart.ipynb with dotnet-repl"
set +e
# The notebook finds the package folder through MLNET_LORA_PACKAGES (it would also find artifacts/packages by itself).
(cd examples/notebooks && MLNET_LORA_PACKAGES="$packages" timeout 1200 \
  dotnet repl --run LoraQuickstart.ipynb --exit-after-run --output-path "$out/LoraQuickstart.out.ipynb")
status=$?
set -e

# Print the cells' text output (streams, plain-text values, errors) so that the CI log tells what happened.
if [[ -f "$out/LoraQuickstart.out.ipynb" ]]; then
  awk '
    /^ *"(text|text\/plain|traceback)": \[/ { inside = 1; next }
    inside && /^ *\]/ { inside = 0; next }
    inside || /^ *"evalue":/ {
      line = $0
      sub(/^ *("evalue": )?"/, "", line); sub(/(\\n)?",?$/, "", line); gsub(/\\"/, "\"", line)
      print "  | " line
    }' "$out/LoraQuickstart.out.ipynb" | head -150
fi
if [[ $status -ne 0 ]]; then
  echo "notebook: FAILED (dotnet-repl exit code $status; a cell threw or the run timed out). Executed notebook: $out/LoraQuickstart.out.ipynb"
  exit 1
fi
echo "notebook: ok"
