// QuickStart: fine-tune the embedded all-MiniLM-L6-v2 with LoRA on a small review dataset, evaluate it with ML.NET's
// metrics, save the adapter-only model, load it back and predict.
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora;
using QuickStart;

string folder = Path.Combine(Path.GetTempPath(), "mlnet-lora-quickstart");
var (trainPath, testPath) = ReviewData.Write(folder);

var ml = new MLContext(seed: 1);
// ML.NET's log channel carries the trainer's progress.
ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info && e.Source.StartsWith("LoraTextClassification")) Console.WriteLine($"  {e.RawMessage}"); };
IDataView train = ml.Data.LoadFromTextFile<Review>(trainPath, hasHeader: true);
IDataView test = ml.Data.LoadFromTextFile<Review>(testPath, hasHeader: true);

var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(labelColumnName: "Label", textColumnName: "Text", rank: 8, maxEpochs: 2))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

Console.WriteLine($"Fine-tuning all-MiniLM-L6-v2 with LoRA (rank 8, query and value) on {trainPath}");
var clock = Stopwatch.StartNew();
ITransformer model = pipeline.Fit(train);
Console.WriteLine($"Trained in {clock.Elapsed.TotalSeconds:F1} s");

var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
Console.WriteLine($"Test set (opinion words unseen in training): accuracy {metrics.MicroAccuracy:P1}, macro accuracy {metrics.MacroAccuracy:P1}, log-loss {metrics.LogLoss:F3}");

string modelPath = Path.Combine(folder, "review-model.zip");
ml.Model.SaveWithAdapters(model, train.Schema, modelPath);
Console.WriteLine($"Saved {modelPath}: {new FileInfo(modelPath).Length / 1024.0:F0} KiB (the base model's weights are about 87 MiB and are not in it)");

ITransformer loaded = ml.Model.LoadWithAdapters(modelPath, out DataViewSchema schema);
var engine = ml.Model.CreatePredictionEngine<Review, ReviewPrediction>(loaded);
foreach (string text in new[] { "the concert was absolutely magnificent.", "the hotel room was filthy and noisy.", "i would happily watch this film again." })
{
    var prediction = engine.Predict(new Review { Text = text });
    Console.WriteLine($"  {prediction.PredictedLabel,-8} ({prediction.Score.Max():P0})  {text}");
}

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
