// OnnxDeploy, step 1 (this process, with TorchSharp): fine-tune all-MiniLM-L6-v2 with LoRA on the QuickStart's review
// data, export the model to ONNX (float32 and dynamic int8), then score it in a second process that references only
// MLNet.Lora.Onnx (examples/OnnxDeploy/Score).
// Usage: dotnet run --project examples/OnnxDeploy/Train -c Release [-- <output folder>]
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Export;
using QuickStart;

string folder = Path.GetFullPath(args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), "mlnet-lora-onnx-deploy"));
var (trainPath, testPath) = ReviewData.Write(folder);

var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadFromTextFile<Review>(trainPath, hasHeader: true);
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(labelColumnName: "Label", textColumnName: "Text", rank: 8, maxEpochs: 2));
Console.WriteLine($"Fine-tuning all-MiniLM-L6-v2 with LoRA on {trainPath}");
var clock = Stopwatch.StartNew();
ITransformer model = pipeline.Fit(train);
Console.WriteLine($"Trained in {clock.Elapsed.TotalSeconds:F1} s");

string fp32 = Path.Combine(folder, "reviews.onnx"), int8 = Path.Combine(folder, "reviews.int8.onnx");
ml.Model.ExportLoraToOnnx(model, fp32);
ml.Model.ExportLoraToOnnx(model, int8, new OnnxExportOptions { Quantization = OnnxQuantization.DynamicInt8 });
Console.WriteLine($"Exported {fp32} ({new FileInfo(fp32).Length / 1048576.0:F1} MiB) and {int8} ({new FileInfo(int8).Length / 1048576.0:F1} MiB)");

// The second process: the Score project, which references MLNet.Lora.Onnx only.
string scoreProject = Path.Combine(SourceFolder(), "..", "Score", "OnnxDeploy.Score.csproj");
Console.WriteLine($"Scoring in a second process: dotnet run --project {Path.GetFullPath(scoreProject)} -c Release -- {fp32} {int8} {testPath}");
using var score = Process.Start(new ProcessStartInfo("dotnet", ["run", "--project", scoreProject, "-c", "Release", "--", fp32, int8, testPath]))!;
score.WaitForExit();
return score.ExitCode;

static string SourceFolder([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

public sealed class Review
{
    [LoadColumn(0)] public string Label { get; set; } = "";
    [LoadColumn(1)] public string Text { get; set; } = "";
}
