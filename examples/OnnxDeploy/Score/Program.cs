// OnnxDeploy, step 2 (a process without TorchSharp): score the exported models with MLNet.Lora.Onnx in an ML.NET pipeline
// and with a PredictionEngine, and compare float32 with int8.
// Usage: dotnet run --project examples/OnnxDeploy/Score -c Release -- <model.onnx> [<model.int8.onnx>] [<test.tsv>]
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Onnx;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: OnnxDeploy.Score <model.onnx> [<model.int8.onnx>] [<test.tsv with Label and Text columns>]");
    return 2;
}
var ml = new MLContext();
IDataView test = args.Length > 2
    ? ml.Data.LoadFromTextFile<Review>(args[2], hasHeader: true)
    : ml.Data.LoadFromEnumerable(new[] { new Review { Label = "positive", Text = "the concert was absolutely magnificent." } });
string[] truth = test.GetColumn<string>("Label").ToArray();

foreach (string path in args.Take(2))
{
    // Scoring pipeline: the exported classifier, then the predicted key back to the label's text.
    var pipeline = ml.Transforms.LoraOnnxTextClassification(path)
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    using var model = pipeline.Fit(test);   // opens the file (one ONNX Runtime session); nothing is trained
    var clock = Stopwatch.StartNew();
    string[] predicted = model.Transform(test).GetColumn<string>("PredictedLabel").ToArray();
    double seconds = clock.Elapsed.TotalSeconds;
    double accuracy = predicted.Zip(truth).Count(p => p.First == p.Second) / (double)truth.Length;
    Console.WriteLine($"{Path.GetFileName(path)}: {new FileInfo(path).Length / 1048576.0:F1} MiB, accuracy {accuracy:P1} on {truth.Length} rows, scored in {seconds:F2} s");

    var engine = ml.Model.CreatePredictionEngine<Review, ReviewPrediction>(model);
    foreach (string text in new[] { "the concert was absolutely magnificent.", "the hotel room was filthy and noisy." })
    {
        var prediction = engine.Predict(new Review { Text = text });
        Console.WriteLine($"  {prediction.PredictedLabel,-8} ({prediction.Score.Max():P0})  {text}");
    }
}

bool torchLoaded = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name?.StartsWith("TorchSharp", StringComparison.Ordinal) == true);
Console.WriteLine($"TorchSharp loaded in this process: {(torchLoaded ? "yes" : "no")}");
return torchLoaded ? 1 : 0;

public sealed class Review
{
    [LoadColumn(0)] public string Label { get; set; } = "";
    [LoadColumn(1)] public string Text { get; set; } = "";
}

public sealed class ReviewPrediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = [];
}
