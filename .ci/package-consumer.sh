#!/usr/bin/env bash
# The package as users consume it: a fresh console project outside the repository references the packed MLNet.Lora and
# TorchSharp-cpu from a local folder plus the machine's default source, builds (the package's buildTransitive step patches
# TorchSharp's native library where the system libstdc++ is too old), and runs a short fit and predict on the default
# model. Usage: .ci/package-consumer.sh [folder holding MLNet.Lora.0.1.0.nupkg] (default artifacts/packages).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

packages=$(cd "${1:-artifacts/packages}" && pwd)
version=0.1.0
nupkg="$packages/MLNet.Lora.$version.nupkg"
[[ -f "$nupkg" ]] || { echo "package-consumer: $nupkg not found; run bash .ci/pack.sh $packages first"; exit 1; }

# The global packages folder keeps an extracted copy per id and version; a rebuilt 0.1.0 would not replace it, so drop
# the stale copies of this repository's packages (and only those) before restoring.
global=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: *//')
for id in mlnet.lora mlnet.lora.core mlnet.lora.charts mlnet.lora.onnx; do rm -rf "${global%/}/$id/$version"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/mlnet-lora-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT

source .ci/fresh-project.sh
fresh_project "$work" Consumer "$packages" "    <PackageReference Include=\"MLNet.Lora\" Version=\"$version\" />
    <PackageReference Include=\"TorchSharp-cpu\" Version=\"0.107.0\" />"

cat > "$work/Program.cs" <<'EOF'
using Microsoft.ML;
using MLNet.Lora;

// A few generated reviews; the embedded all-MiniLM-L6-v2 already knows these words.
string[] good = ["great", "wonderful", "excellent", "lovely"], bad = ["awful", "terrible", "boring", "dreadful"];
string[] subjects = ["the movie", "this film", "the plot", "the acting"];
var random = new Random(1);
var rows = Enumerable.Range(0, 96).Select(_ =>
{
    bool positive = random.Next(2) == 0;
    string[] words = positive ? good : bad;
    return new Review { Label = positive ? "positive" : "negative", Text = $"{subjects[random.Next(4)]} was {words[random.Next(4)]}." };
}).ToList();

var ml = new MLContext(seed: 1);
var data = ml.Data.LoadFromEnumerable(rows);
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
    {
        Rank = 4, MaxEpochs = 2, BatchSize = 16, MaxSequenceLength = 32, LearningRate = 3e-3, Seed = 1,
    }))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
var model = pipeline.Fit(data);
var engine = ml.Model.CreatePredictionEngine<Review, Prediction>(model);
foreach (string text in new[] { "the movie was excellent.", "the plot was dreadful." })
{
    var prediction = engine.Predict(new Review { Text = text });
    if (prediction.PredictedLabel is not ("positive" or "negative") || prediction.Score.Length != 2)
        throw new InvalidOperationException($"Unexpected prediction '{prediction.PredictedLabel}' for '{text}'.");
    Console.WriteLine($"  {prediction.PredictedLabel,-8} {prediction.Score.Max():P0}  {text}");
}
Console.WriteLine($"  run-time native patch: {MLNet.Lora.Native.TorchNativeLoader.Status}");

public sealed class Review
{
    public string Label { get; set; } = "";
    public string Text { get; set; } = "";
}

public sealed class Prediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = [];
}
EOF

echo "package-consumer: building a fresh console project in $work against $nupkg"
dotnet build "$work/Consumer.csproj" -c Release -v minimal 2>&1 | tee "$work/build.log" | grep -E "MLNet.Lora:|error|Warn|Build succeeded" || true
grep -q "Build succeeded" "$work/build.log" || { echo "package-consumer: FAILED to build"; cat "$work/build.log"; exit 1; }

# What the package holds, as NuGet extracted it: library, XML docs, README and the native-loading build step.
extracted="${global%/}/mlnet.lora/$version"
for file in lib/net10.0/MLNet.Lora.dll lib/net10.0/MLNet.Lora.xml README.md buildTransitive/MLNet.Lora.targets buildTransitive/ElfVersionPatcher.cs; do
  [[ -f "$extracted/$file" ]] || { echo "package-consumer: FAILED: the package lacks $file"; exit 1; }
done
echo "package-consumer: the package holds the library, its XML docs, README.md and buildTransitive/MLNet.Lora.targets"

# Run with the library's run-time patch off, so that only the package's build step can make TorchSharp load.
echo "package-consumer: fit and predict with the default model"
MLNET_LORA_SKIP_NATIVE_PATCH=1 dotnet "$work/bin/Release/net10.0/Consumer.dll"
echo "package-consumer: ok"
