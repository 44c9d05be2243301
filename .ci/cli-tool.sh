#!/usr/bin/env bash
# The command-line tool as users get it: packs MLNet.Lora.Cli for this platform, installs it from the packed package
# into a temporary tool path (`dotnet tool install --tool-path ... --add-source`), and runs train -> evaluate -> predict
# (whole and in two shards) on a small dataset written here, on the embedded default model.
# Usage: .ci/cli-tool.sh [package folder] (default artifacts/packages). Prints "cli-tool: ok" at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

packages=$(mkdir -p "${1:-artifacts/packages}" && cd "${1:-artifacts/packages}" && pwd)
version=0.1.0
rid=$(dotnet --info | sed -nE 's/^ *RID: *//p' | head -1)
case "$rid" in linux-x64|win-x64|osx-arm64) ;; *) echo "cli-tool: no tool package for platform '$rid'"; exit 1 ;; esac

# The tool's packages: a small one that names the platforms, and one per platform with its libtorch.
dotnet pack src/MLNet.Lora.Cli -c Release -o "$packages" -p:ToolPackageRuntimeIdentifiers="$rid"
ls -la "$packages"/MLNet.Lora.Cli*.nupkg

# A rebuilt 0.1.0 must not be served from the global packages folder's older extraction.
global=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: *//')
rm -rf "${global%/}/mlnet.lora.cli/$version" "${global%/}/mlnet.lora.cli.$rid/$version"

work=$(mktemp -d "${TMPDIR:-/tmp}/mlnet-lora-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
dotnet tool install MLNet.Lora.Cli --version "$version" --tool-path "$work/tools" --add-source "$packages"
tool="$work/tools/mlnet-lora"

# A small review dataset: the test rows use opinion words the training rows do not; some fields are quoted.
write() {   # file rows seed positive-words negative-words
  local file=$1 rows=$2 i label word subject
  local -a pos=($4) neg=($5) subjects=(movie film plot story acting music)
  RANDOM=$3
  printf 'Sentiment\tReview\n' > "$file"
  for ((i = 0; i < rows; i++)); do
    if ((i % 2 == 0)); then label=positive word=${pos[RANDOM % ${#pos[@]}]}; else label=negative word=${neg[RANDOM % ${#neg[@]}]}; fi
    subject=${subjects[RANDOM % ${#subjects[@]}]}
    if ((i % 5 == 0)); then printf '%s\t"the %s was really %s, honestly"\n' "$label" "$subject" "$word"
    else printf '%s\tthe %s was really %s\n' "$label" "$subject" "$word"; fi >> "$file"
  done
}
write "$work/train.tsv" 96 1 "good great fine lovely" "bad awful poor dull"
write "$work/test.tsv" 40 2 "excellent wonderful" "terrible boring"

"$tool" --help > "$work/help.txt"; head -12 "$work/help.txt"
"$tool" train --dataset "$work/train.tsv" --label-col Sentiment --text-col Review --epochs 2 --batch-size 16 \
    --max-seq-len 32 --seed 1 --output "$work/model.zip"
"$tool" evaluate --model "$work/model.zip" --dataset "$work/test.tsv" --label-col Sentiment --text-col Review | tee "$work/evaluate.txt"
grep -q "micro accuracy" "$work/evaluate.txt"
"$tool" predict --model "$work/model.zip" --dataset "$work/test.tsv" --text-col Review --output "$work/predictions.tsv"
JOB_COMPLETION_INDEX=0 "$tool" predict --model "$work/model.zip" --dataset "$work/test.tsv" --shards 2 --output "$work/part-0.tsv"
JOB_COMPLETION_INDEX=1 "$tool" predict --model "$work/model.zip" --dataset "$work/test.tsv" --shards 2 --output "$work/part-1.tsv"
head -3 "$work/predictions.tsv"
# The shards, concatenated in order under one header, are the unsharded output.
cmp <(cat "$work/part-0.tsv"; tail -n +2 "$work/part-1.tsv") "$work/predictions.tsv"
[[ $(wc -l < "$work/predictions.tsv") -eq 41 ]]
echo "cli-tool: ok"
