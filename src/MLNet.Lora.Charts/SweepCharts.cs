using System.Globalization;
using ScottPlot;

namespace MLNet.Lora.Sweeps;

/// <summary>The sweep chart (ScottPlot 5): a metric against trainable parameters, the Pareto front and best trial marked.</summary>
/// <example>
/// <code>
/// SweepCharts.Save(result.Trials, "sweep.png", SweepMetric.Accuracy);   // or result.SaveChart("sweep.png")
/// </code>
/// </example>
public static class SweepCharts
{
    /// <summary>Draws the sweep's metric against trainable parameters to a PNG file (atomically), the Pareto front and best trial highlighted.</summary>
    /// <param name="result">The sweep.</param>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="title">The title; a default naming the metric when null.</param>
    public static void SaveChart(this LoraSweepResult result, string path, int width = 900, int height = 560, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        Save(result.Trials, path, result.Metric, width, height, title);
    }

    /// <summary>
    /// Draws <paramref name="metric"/> against trainable parameters (log scale) to a PNG, atomically: every trial as a
    /// point labelled with its rank, the Pareto front circled and joined, the best trial starred.
    /// </summary>
    public static void Save(IReadOnlyList<LoraSweepTrial> trials, string path, SweepMetric metric = SweepMetric.Accuracy,
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
        SweepReports.WriteAtomically(path, plot.GetImageBytes(width, height, ImageFormat.Png));
    }

    private static string FormatCount(double count) => count switch
    {
        >= 1e6 => (count / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M",
        >= 1e3 => (count / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        _ => count.ToString("0", CultureInfo.InvariantCulture),
    };
}
