using MLNet.Lora.IO;
using ScottPlot;

namespace MLNet.Lora.Forgetting;

/// <summary>PNG charts of a <see cref="ForgettingReport"/> (ScottPlot 5), each file written atomically.</summary>
/// <example>
/// <code>
/// IReadOnlyList&lt;string&gt; written = report.SaveCharts("charts");   // timeline-*.png, drift-per-layer.png, conflict-per-module.png
/// </code>
/// </example>
public static class ForgettingCharts
{
    private const int Width = 1150;
    private const int Height = 520;

    /// <summary>
    /// Draws the report's charts as PNG files into <paramref name="folder"/> (each written atomically): one timeline per
    /// fine-tune, drift per layer, and conflict per module kind, for the sections that hold data.
    /// </summary>
    /// <param name="report">The report to draw.</param>
    /// <param name="folder">Output folder; created when missing.</param>
    /// <returns>The paths written.</returns>
    public static IReadOnlyList<string> SaveCharts(this ForgettingReport report, string folder) => SaveAll(report, folder);

    /// <summary>Writes every chart the report has data for into <paramref name="folder"/>.</summary>
    /// <param name="report">The report to draw.</param>
    /// <param name="folder">Output folder; created when missing.</param>
    /// <returns>The files written: <c>timeline-&lt;label&gt;.png</c> per timeline, <c>drift-per-layer.png</c>, <c>conflict-per-module.png</c>.</returns>
    public static IReadOnlyList<string> SaveAll(ForgettingReport report, string folder)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Directory.CreateDirectory(folder);
        var written = new List<string>();
        foreach (var timeline in report.Timelines)
        {
            string path = Path.Combine(folder, $"timeline-{Slug(timeline.Label)}.png");
            SaveTimeline(timeline, path);
            written.Add(path);
        }
        if (report.Internals.Count > 0 || report.Sequences.Any(s => s.Drift.Count > 0) || report.Timelines.Any(t => t.Points.Count > 1))
        {
            string path = Path.Combine(folder, "drift-per-layer.png");
            SaveDriftPerLayer(report, path);
            written.Add(path);
        }
        if (report.GradientConflicts.Count > 0 || report.Sequences.Any(s => s.GradientConflicts.Count > 0))
        {
            string path = Path.Combine(folder, "conflict-per-module.png");
            SaveConflictPerModule(report, path);
            written.Add(path);
        }
        return written;
    }

    /// <summary>
    /// Each signal of <paramref name="timeline"/> divided by its threshold, per epoch: a line crossing 1 is a signal
    /// that moved, so the order of crossings is the order of onsets.
    /// </summary>
    /// <param name="timeline">The timeline.</param>
    /// <param name="path">The PNG file to write.</param>
    public static void SaveTimeline(ForgettingTimeline timeline, string path)
    {
        ArgumentNullException.ThrowIfNull(timeline);
        var plot = new Plot();
        var th = timeline.Thresholds;
        var points = timeline.Points.OrderBy(p => p.Epoch).ToList();
        double[] epochs = points.Select(p => (double)p.Epoch).ToArray();
        double? lambda0 = points.FirstOrDefault(p => p.Epoch == 0)?.TopHessianEigenvalue;

        void Series(string name, Func<TimelinePoint, double?> value, double threshold)
        {
            var ys = points.Select(p => value(p) is { } v ? v / threshold : double.NaN).ToArray();
            if (ys.All(double.IsNaN)) return;
            var line = plot.Add.Scatter(epochs, ys);
            line.LegendText = $"{name} ÷ {threshold:G3}";
            line.MarkerSize = 7;
            line.LineWidth = 2;
        }
        Series("retention drop", p => p.RetentionDrop, th.RetentionDrop);
        Series("attention JS (max layer)", p => p.MaxAttentionDrift, th.AttentionDrift);
        Series("representation 1−CKA (max layer)", p => p.MaxRepresentationDrift, th.RepresentationDrift);
        if (lambda0 is { } l0 && l0 != 0)
            Series("|Δ top eigenvalue| / |λ₀|", p => p.TopHessianEigenvalue is { } l ? Math.Abs(l - l0) / Math.Abs(l0) : null, th.SharpnessChange);

        var threshold = plot.Add.HorizontalLine(1);
        threshold.LinePattern = LinePattern.Dashed;
        threshold.Color = Colors.Gray;
        plot.Title($"{timeline.Label}: signals relative to their thresholds ({timeline.Verdict})");
        plot.XLabel("epoch (0 = before training)");
        plot.YLabel("signal ÷ threshold (≥ 1: moved)");
        plot.Axes.Bottom.SetTicks(epochs, epochs.Select(e => e.ToString("0")).ToArray());
        plot.ShowLegend(Edge.Right);   // beside the data, never over it
        Save(plot, path);
    }

    /// <summary>
    /// Representation drift (1 − CKA) per hidden state: one line per retention candidate (mean over its retention tasks),
    /// per sequence strategy (mean over old tasks) and per timeline (last epoch).
    /// </summary>
    /// <param name="report">The report.</param>
    /// <param name="path">The PNG file to write.</param>
    public static void SaveDriftPerLayer(ForgettingReport report, string path)
    {
        ArgumentNullException.ThrowIfNull(report);
        var plot = new Plot();
        void Series(string name, IEnumerable<double[]> drifts)
        {
            var list = drifts.Where(d => d.Length > 0).ToList();
            if (list.Count == 0) return;
            int n = list.Min(d => d.Length);
            var mean = Enumerable.Range(0, n).Select(s => list.Average(d => d[s])).ToArray();
            var line = plot.Add.Scatter(Enumerable.Range(0, n).Select(i => (double)i).ToArray(), mean);
            line.LegendText = name;
            line.MarkerSize = 6;
            line.LineWidth = 2;
        }
        foreach (var group in report.Internals.GroupBy(d => d.Candidate))
            Series($"{group.Key} vs {group.First().Reference} ({group.Count()} tasks)", group.Select(d => d.RepresentationDrift));
        foreach (var q in report.Sequences.Where(q => q.Drift.Count > 0))
            Series($"sequence {q.Strategy} (old tasks, own training → end)", q.Drift.Select(d => d.RepresentationDrift));
        foreach (var t in report.Timelines.Where(t => t.Points.Count > 1))
            Series($"timeline {t.Label}, epoch {t.Points[^1].Epoch}", [t.Points[^1].RepresentationDrift]);

        int states = report.Internals.Select(d => d.RepresentationDrift.Length)
            .Concat(report.Sequences.SelectMany(q => q.Drift).Select(d => d.RepresentationDrift.Length)).DefaultIfEmpty(1).Max();
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, states).Select(i => (double)i).ToArray(), Enumerable.Range(0, states).Select(i => i.ToString()).ToArray());
        plot.Title("Representation drift per layer");
        plot.XLabel("hidden state (0 = embeddings, l = after layer l)");
        plot.YLabel("1 − linear CKA");
        plot.Axes.SetLimitsY(0, 1);
        plot.ShowLegend(Edge.Right);   // beside the data, never over it
        Save(plot, path);
    }

    /// <summary>
    /// Conflict rate per module kind as grouped bars: one group per module kind, one bar per source (retention
    /// candidate or sequence strategy, weight matrices W or adapters A), counts pooled over its measurements.
    /// </summary>
    /// <param name="report">The report.</param>
    /// <param name="path">The PNG file to write.</param>
    public static void SaveConflictPerModule(ForgettingReport report, string path)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sources = new List<(string Name, IReadOnlyList<GradientConflictSummary> Summaries)>();
        void Source(string name, IEnumerable<IReadOnlyList<GradientConflictSummary>> parts)
        {
            var pooled = parts.SelectMany(p => p).GroupBy(s => s.ModuleKind)
                .Select(g => new GradientConflictSummary(g.Key, g.Sum(s => s.Count),
                    g.Sum(s => s.MeanCosine * s.Count) / g.Sum(s => s.Count), g.Sum(s => s.ConflictRate * s.Count) / g.Sum(s => s.Count)))
                .ToList();
            if (pooled.Count > 0) sources.Add((name, pooled));
        }
        foreach (var group in report.GradientConflicts.GroupBy(g => g.Model))
        {
            Source($"{group.Key} W", group.Select(g => g.WeightMatrices));
            Source($"{group.Key} A", group.Select(g => g.Adapters));
        }
        foreach (var q in report.Sequences.Where(q => q.GradientConflicts.Count > 0))
        {
            Source($"sequence {q.Strategy} W", q.GradientConflicts.Select(g => g.WeightMatrices));
            Source($"sequence {q.Strategy} A", q.GradientConflicts.Select(g => g.Adapters));
        }

        var plot = new Plot();
        var kinds = EncoderWeights.KindNames;
        double width = 0.8 / Math.Max(1, sources.Count);
        var palette = new ScottPlot.Palettes.Category10();
        for (int s = 0; s < sources.Count; s++)
        {
            var color = palette.GetColor(s);
            var bars = new List<Bar>();
            for (int k = 0; k < kinds.Count; k++)
            {
                if (sources[s].Summaries.FirstOrDefault(x => x.ModuleKind == kinds[k]) is not { } summary) continue;
                bars.Add(new Bar { Position = k - 0.4 + width * (s + 0.5), Value = summary.ConflictRate, FillColor = color, Size = width * 0.9 });
            }
            plot.Add.Bars(bars);
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = sources[s].Name, FillColor = color });
        }
        var half = plot.Add.HorizontalLine(0.5);
        half.LinePattern = LinePattern.Dashed;
        half.Color = Colors.Gray;
        plot.Title("Gradient conflict per module kind (share of negative cosines)");
        plot.YLabel("conflict rate");
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, kinds.Count).Select(k => (double)k).ToArray(), kinds.ToArray());
        plot.Axes.SetLimitsY(0, 1);
        plot.ShowLegend(Edge.Right);
        Save(plot, path);
    }

    private static void Save(Plot plot, string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(Width, Height, ImageFormat.Png));
    }

    private static string Slug(string text)
    {
        var chars = text.ToLowerInvariant().Select(ch => char.IsAsciiLetterOrDigit(ch) ? ch : '-').ToArray();
        var slug = string.Join('-', new string(chars).Split('-', StringSplitOptions.RemoveEmptyEntries));
        return slug.Length == 0 ? "run" : slug;
    }
}
