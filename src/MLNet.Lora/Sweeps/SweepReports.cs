using System.Globalization;
using System.Text;
using ScottPlot;

namespace MLNet.Lora.Sweeps;

/// <summary>CSV, chart and text reports of sweep trials (also for trials gathered from several sweeps).</summary>
public static class SweepReports
{
    /// <summary>The CSV header, in order.</summary>
    public static IReadOnlyList<string> CsvColumns { get; } =
    [
        "trial", "rung", "rank", "alpha", "alpha_setting", "target_modules", "learning_rate", "epochs",
        "accuracy", "macro_accuracy", "macro_f1", "log_loss", "trainable_parameters", "adapter_file_bytes",
        "training_seconds", "training_cpu_seconds", "forgetting", "pareto_optimal", "promoted", "best", "error",
    ];

    /// <summary>
    /// Writes <paramref name="trials"/> as CSV (RFC 4180, invariant culture, empty cells for missing values). The file is
    /// written beside the target and renamed over it, so a reader never sees half a file.
    /// </summary>
    public static void SaveCsv(IEnumerable<LoraSweepTrial> trials, string path)
    {
        ArgumentNullException.ThrowIfNull(trials);
        var text = new StringBuilder();
        text.AppendLine(string.Join(',', CsvColumns));
        foreach (var t in trials)
        {
            string?[] cells =
            [
                Int(t.Number), Int(t.Rung), Int(t.Settings.Rank), Number(t.Settings.Alpha), t.Settings.AlphaSetting.ToString(),
                LoraTrialSettings.FormatModules(t.Settings.TargetModules), Number(t.Settings.LearningRate), Int(t.Epochs),
                Number(t.Accuracy), Number(t.MacroAccuracy), Number(t.MacroF1), Number(t.LogLoss),
                t.Succeeded ? t.TrainableParameters.ToString(CultureInfo.InvariantCulture) : null,
                t.AdapterFileBytes?.ToString(CultureInfo.InvariantCulture),
                Number(t.TrainingTime.TotalSeconds), Number(t.TrainingCpuTime.TotalSeconds), t.Forgetting is { } f ? Number(f) : null,
                Bool(t.IsParetoOptimal), Bool(t.Promoted), Bool(t.IsBest), t.Error,
            ];
            text.AppendLine(string.Join(',', cells.Select(Escape)));
        }
        WriteAtomically(path, Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>
    /// Draws <paramref name="metric"/> against trainable parameters (log scale) to a PNG, atomically: every trial as a
    /// point labelled with its rank, the Pareto front circled and joined, the best trial starred.
    /// </summary>
    public static void SaveChart(IReadOnlyList<LoraSweepTrial> trials, string path, SweepMetric metric = SweepMetric.Accuracy,
        int width = 900, int height = 560, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(trials);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 200);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 150);
        var scored = trials.Where(t => t.Succeeded && t.TrainableParameters > 0).ToList();
        if (scored.Count == 0) throw new ArgumentException("No trial succeeded: there is nothing to draw.", nameof(trials));
        string metricName = metric == SweepMetric.MacroF1 ? "Validation macro-F1" : "Validation accuracy";

        var plot = new Plot();
        // Parameters grow geometrically with rank: plot log10 of the count and label the ticks with the count itself.
        double X(LoraSweepTrial t) => Math.Log10(t.TrainableParameters);
        foreach (var rung in scored.GroupBy(t => t.Rung).OrderBy(g => g.Key))
        {
            var points = plot.Add.ScatterPoints(rung.Select(X).ToArray(), rung.Select(t => t.Score(metric)).ToArray());
            points.MarkerSize = 8;
            points.LegendText = scored.Any(t => t.Rung > 0) ? $"round {rung.Key} ({rung.First().Epochs} epochs)" : "trials";
        }
        var front = scored.Where(t => t.IsParetoOptimal).OrderBy(t => t.TrainableParameters).ToList();
        if (front.Count > 0)
        {
            var line = plot.Add.ScatterLine(front.Select(X).ToArray(), front.Select(t => t.Score(metric)).ToArray());
            line.MarkerShape = MarkerShape.OpenCircle;
            line.MarkerSize = 16;
            line.LineWidth = 1.5f;
            line.LegendText = front.Any(t => t.Forgetting is not null) ? "Pareto front (with forgetting)" : "Pareto front";
        }
        if (scored.FirstOrDefault(t => t.IsBest) is { } best)
        {
            var star = plot.Add.Markers(new[] { X(best) }, new[] { best.Score(metric) }, MarkerShape.FilledDiamond, 14, Colors.Red);
            star.LegendText = $"best (r={best.Settings.Rank})";
        }
        foreach (var t in scored.GroupBy(t => (t.Settings.Rank, t.TrainableParameters)).Select(g => g.MaxBy(t => t.Score(metric))!))
        {
            var label = plot.Add.Text($"r={t.Settings.Rank}", X(t), t.Score(metric));
            label.LabelFontSize = 11;
            label.OffsetX = 6;
            label.OffsetY = -6;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = v => FormatCount(Math.Pow(10, v)),
        };
        double minX = scored.Min(X), maxX = scored.Max(X);
        double minY = scored.Min(t => t.Score(metric)), maxY = scored.Max(t => t.Score(metric));
        double padX = Math.Max(0.08, (maxX - minX) * 0.08), padY = Math.Max(0.01, (maxY - minY) * 0.15);
        plot.Axes.SetLimits(minX - padX, maxX + padX * 2, minY - padY, Math.Min(1.0 + padY / 4, maxY + padY));
        plot.XLabel("Trainable parameters (adapters + head, log scale)");
        plot.YLabel(metricName);
        plot.Title(title ?? $"LoRA sweep: {metricName.ToLowerInvariant()} against trainable parameters");
        plot.ShowLegend(Alignment.LowerRight);
        WriteAtomically(path, plot.GetImageBytes(width, height, ImageFormat.Png));
    }

    /// <summary>A fixed-width table of the trials.</summary>
    public static string Table(IEnumerable<LoraSweepTrial> trials)
    {
        ArgumentNullException.ThrowIfNull(trials);
        var text = new StringBuilder();
        text.AppendLine($"{"#",3} {"round",5} {"rank",4} {"alpha",6} {"modules",-14} {"lr",7} {"ep",3} {"accuracy",8} {"macroF1",7} {"trainable",10} {"file KiB",8} {"train s",7} {"cpu s",7} {"forget",7}  front");
        foreach (var t in trials)
        {
            if (!t.Succeeded)
            {
                text.AppendLine($"{t.Number,3} {t.Rung,5} {t.Settings.Rank,4} {t.Settings.Alpha,6:G4} {LoraTrialSettings.FormatModules(t.Settings.TargetModules),-14} {t.Settings.LearningRate,7:G2} {t.Epochs,3} failed: {t.Error}");
                continue;
            }
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{t.Number,3} {t.Rung,5} {t.Settings.Rank,4} {t.Settings.Alpha,6:G4} {LoraTrialSettings.FormatModules(t.Settings.TargetModules),-14} {t.Settings.LearningRate,7:G2} {t.Epochs,3} " +
                $"{t.Accuracy,8:F4} {t.MacroF1,7:F4} {t.TrainableParameters,10:N0} {(t.AdapterFileBytes is { } b ? (b / 1024.0).ToString("F0", CultureInfo.InvariantCulture) : "-"),8} " +
                $"{t.TrainingTime.TotalSeconds,7:F1} {t.TrainingCpuTime.TotalSeconds,7:F1} {(t.Forgetting is { } f ? f.ToString("F4", CultureInfo.InvariantCulture) : "-"),7}  " +
                $"{(t.IsParetoOptimal ? "*" : "")}{(t.IsBest ? " best" : "")}{(t.Promoted ? " promoted" : "")}"));
        }
        return text.ToString();
    }

    /// <summary>Writes beside <paramref name="path"/> and renames over it; the folder must exist.</summary>
    internal static void WriteAtomically(string path, byte[] bytes) => IO.AtomicFile.Write(path, stream => stream.Write(bytes), createFolder: false);

    private static string FormatCount(double count) => count switch
    {
        >= 1e6 => (count / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M",
        >= 1e3 => (count / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        _ => count.ToString("0", CultureInfo.InvariantCulture),
    };

    private static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string? Number(double value) => double.IsNaN(value) ? null : value.ToString("R", CultureInfo.InvariantCulture);

    private static string Bool(bool value) => value ? "true" : "false";

    private static string Escape(string? cell)
    {
        if (cell is null) return "";
        return cell.IndexOfAny([',', '"', '\n', '\r']) < 0 ? cell : "\"" + cell.Replace("\"", "\"\"") + "\"";
    }
}
