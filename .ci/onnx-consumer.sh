#!/usr/bin/env bash
# Deployment without libtorch, as users do it: (1) a fresh project referencing the packed MLNet.Lora and TorchSharp-cpu
# fits a short LoRA classifier on the default model and exports it to ONNX (float32 and int8); (2) a second fresh project
# that references only the packed MLNet.Lora.Onnx checks that no TorchSharp package is in its restore graph
# (obj/project.assets.json), then scores the exported files in an ML.NET pipeline and a PredictionEngine and compares
# them with the probabilities the TorchSharp model gave. Usage: .ci/onnx-consumer.sh [package folder] (default artifacts/packages).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

packages=$(cd "${1:-artifacts/packages}" && pwd)
version=0.1.0
for id in MLNet.Lora MLNet.Lora.Core MLNet.Lora.Onnx; do
  [[ -f "$packages/$id.$version.nupkg" ]] || { echo "onnx-consumer: $packages/$id.$version.nupkg not found; run bash .ci/pack.sh $packages first"; exit 1; }
done
global=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: *//')
for id in mlnet.lora mlnet.lora.core mlnet.lora.charts mlnet.lora.onnx; do rm -rf "${global%/}/$id/$version"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/mlnet-lora-onnx-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT

source .ci/fresh-project.sh

build() {
  local dir=$1
  dotnet build "$dir" -c Release -v minimal > "$dir/build.log" 2>&1 || { echo "onnx-consumer: FAILED to build $(basename "$dir")"; cat "$dir/build.log"; exit 1; }
}

# 1. Train and export, with TorchSharp.
fresh_project "$work/Exporter" Exporter "$packages" "    <PackageReference Include=\"MLNet.Lora\" Version=\"$version\" />
    <PackageReference Include=\"TorchSharp-cpu\" Version=\"0.107.0\" />"
cat > "$work/Exporter/Program.cs" <<'CS'
using System.Globalization;
using Microsoft.ML;
using MLNet.Lora;
using MLNet.Lora.Export;

string folder = args[0];
string[] good = ["great", "wonderful", "excellent", "lovely"], bad = ["awful", "terrible", "boring", "dreadful"];
string[] subjects = ["the movie", "this film", "the plot", "the acting"];
var random = new Random(1);
var rows = Enumerable.Range(0, 96).Select(_ =>
{
    bool positive = random.Next(2) == 0;
    return new Review { Label = positive ? "positive" : "negative", Text = $"{subjects[random.Next(4)]} was {(positive ? good : bad)[random.Next(4)]}." };
}).ToList();
var ml = new MLContext(seed: 1);
var model = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
    {
        Rank = 4, MaxEpochs = 2, BatchSize = 16, MaxSequenceLength = 32, LearningRate = 3e-3, Seed = 1,
    }))
    .Fit(ml.Data.LoadFromEnumerable(rows));
ml.Model.ExportLoraToOnnx(model, Path.Combine(folder, "model.onnx"));
ml.Model.ExportLoraToOnnx(model, Path.Combine(folder, "model.int8.onnx"), new OnnxExportOptions { Quantization = OnnxQuantization.DynamicInt8 });
// The TorchSharp model's probabilities of the texts the scorer checks, for comparison in the other process.
var lora = ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single();
string[] texts = ["the movie was excellent.", "the plot was dreadful.", "this film was lovely.", "the acting was boring."];
File.WriteAllLines(Path.Combine(folder, "expected.tsv"), texts.Zip(lora.PredictProbabilities(texts),
    (t, p) => $"{t}\t{string.Join(',', p.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}"));
Console.WriteLine($"  exported model.onnx ({new FileInfo(Path.Combine(folder, "model.onnx")).Length / 1048576.0:F1} MiB) and model.int8.onnx ({new FileInfo(Path.Combine(folder, "model.int8.onnx")).Length / 1048576.0:F1} MiB)");

public sealed class Review
{
    public string Label { get; set; } = "";
    public string Text { get; set; } = "";
}
CS
echo "onnx-consumer: building the exporter (MLNet.Lora, TorchSharp-cpu) in $work/Exporter"
build "$work/Exporter"
echo "onnx-consumer: short fit on the default model and export"
mkdir -p "$work/models"
dotnet "$work/Exporter/bin/Release/net10.0/Exporter.dll" "$work/models"

# 2. Score, with MLNet.Lora.Onnx only.
fresh_project "$work/Scorer" Scorer "$packages" "    <PackageReference Include=\"MLNet.Lora.Onnx\" Version=\"$version\" />"
cat > "$work/Scorer/Program.cs" <<'CS'
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Onnx;

string folder = args[0];
var expected = File.ReadAllLines(Path.Combine(folder, "expected.tsv")).Select(l => l.Split('\t'))
    .ToDictionary(p => p[0], p => p[1].Split(',').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray());
var ml = new MLContext();
var data = ml.Data.LoadFromEnumerable(expected.Keys.Select(t => new Review { Text = t }));
foreach (var (file, tolerance) in new[] { ("model.onnx", 1e-4f), ("model.int8.onnx", 0.1f) })
{
    using var model = ml.Transforms.LoraOnnxTextClassification(Path.Combine(folder, file))
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
        .Fit(data);
    var engine = ml.Model.CreatePredictionEngine<Review, Prediction>(model);
    var scored = model.Transform(data);
    var labels = scored.GetColumn<string>("PredictedLabel").ToArray();
    int row = 0;
    foreach (var (text, probabilities) in expected)
    {
        var prediction = engine.Predict(new Review { Text = text });
        float difference = prediction.Score.Zip(probabilities).Max(p => Math.Abs(p.First - p.Second));
        if (difference > tolerance || prediction.PredictedLabel != labels[row++] || prediction.PredictedLabel is not ("positive" or "negative"))
            throw new InvalidOperationException($"{file}: '{text}' scored {prediction.PredictedLabel} [{string.Join(", ", prediction.Score)}], TorchSharp gave [{string.Join(", ", probabilities)}].");
        Console.WriteLine($"  {file,-16} {prediction.PredictedLabel,-8} {prediction.Score.Max():P0} (|diff| {difference:E1})  {text}");
    }
}
if (AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name?.StartsWith("TorchSharp", StringComparison.Ordinal) == true))
    throw new InvalidOperationException("TorchSharp was loaded into the scoring process.");

public sealed class Review
{
    public string Text { get; set; } = "";
}

public sealed class Prediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = [];
}
CS
echo "onnx-consumer: building the scorer (MLNet.Lora.Onnx only) in $work/Scorer"
build "$work/Scorer"
# The restore graph's library names ("name/version") must not include TorchSharp, ScottPlot or SkiaSharp.
assets="$work/Scorer/obj/project.assets.json"
heavy=$(grep -oiE '"(torchsharp|libtorch|scottplot|skiasharp)[^/"]*/[^"]*"' "$assets" | sort -u | tr '\n' ' ' || true)
if [[ -n "$heavy" ]]; then
  echo "onnx-consumer: FAILED: the scorer's restore graph holds $heavy"
  exit 1
fi
echo "onnx-consumer: the scorer's restore graph has no TorchSharp, ScottPlot or SkiaSharp"
dotnet "$work/Scorer/bin/Release/net10.0/Scorer.dll" "$work/models"
echo "onnx-consumer: ok"
