using System.CommandLine;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Cli.Data;
using MLNet.Lora.Sweeps;
using Spectre.Console;

namespace MLNet.Lora.Cli.Commands;

/// <summary><c>evaluate</c>: ML.NET's multiclass metrics of a model on labelled data, a per-class table and the confusion matrix.</summary>
internal static class EvaluateCommand
{
    public static Command Create(CliConsole console, Option<int?> threads)
    {
        var data = new DataOptionSet(labelRequired: true);
        var model = CommonOptions.Model();
        var command = new Command("evaluate", "Score a model on labelled data: accuracy, log-loss, macro-F1, per-class precision and recall, confusion matrix.") { model };
        data.AddTo(command);
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads, ct =>
        {
            var ml = new MLContext(seed: 1);
            using var saved = SavedModel.Load(ml, parse.GetValue(model)!.FullName);
            var dataset = data.Read(parse);
            LabelCheck.AllKnown(dataset, saved.Classes.ToList());
            var view = dataset.ToDataView(ml);
            string label = data.Columns(parse).Label!;
            // The model's own label mapping keeps its class order; a model saved without one gets the classes' order.
            var mapper = saved.LabelMapper ?? ml.Transforms.Conversion.MapValueToKey(label,
                keyData: ml.Data.LoadFromEnumerable(saved.Classes.Select(c => new ClassRow { Value = c }))).Fit(view);
            var scored = saved.Lora.Transform(mapper.Transform(view));
            var settings = saved.Lora.Settings;
            var metrics = ml.MulticlassClassification.Evaluate(scored, labelColumnName: label, scoreColumnName: settings.ScoreColumnName,
                predictedLabelColumnName: settings.PredictedLabelColumnName);
            Print(console, metrics, saved.Classes, dataset.Rows.Count, dataset.Table.Path);
            return Task.FromResult(0);
        }, token));
        return command;
    }

    private static void Print(CliConsole console, MulticlassClassificationMetrics metrics, IReadOnlyList<string> classes, int rows, string path)
    {
        var c = CultureInfo.InvariantCulture;
        var counts = metrics.ConfusionMatrix.Counts;
        console.Line($"Evaluated on {rows} rows of '{path}'.");
        var summary = new Table().AddColumns("metric", "value");
        summary.AddRow("micro accuracy", metrics.MicroAccuracy.ToString("F4", c));
        summary.AddRow("macro accuracy", metrics.MacroAccuracy.ToString("F4", c));
        summary.AddRow("macro-F1", ClassificationScores.MacroF1(metrics.ConfusionMatrix).ToString("F4", c));
        summary.AddRow("log-loss", metrics.LogLoss.ToString("F4", c));
        summary.AddRow("log-loss reduction", metrics.LogLossReduction.ToString("F4", c));
        console.Ansi.Write(summary);

        var perClass = new Table().AddColumns("class", "precision", "recall", "F1", "support");
        for (int i = 0; i < classes.Count && i < counts.Count; i++)
        {
            double precision = metrics.ConfusionMatrix.PerClassPrecision[i], recall = metrics.ConfusionMatrix.PerClassRecall[i];
            double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
            perClass.AddRow(Markup.Escape(classes[i]), precision.ToString("F4", c), recall.ToString("F4", c), f1.ToString("F4", c), counts[i].Sum().ToString("F0", c));
        }
        console.Ansi.Write(perClass);

        console.Line("Confusion matrix (rows: actual, columns: predicted):");
        var confusion = new Table();
        confusion.AddColumn("actual \\ predicted");
        foreach (string name in classes.Take(counts.Count)) confusion.AddColumn(Markup.Escape(name));
        for (int i = 0; i < counts.Count; i++)
            confusion.AddRow([Markup.Escape(classes[i]), .. counts[i].Select(v => v.ToString("F0", c))]);
        console.Ansi.Write(confusion);
    }

    private sealed class ClassRow
    {
        public string Value { get; set; } = "";
    }
}
