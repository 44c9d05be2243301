using System.Text;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// The forgetting signals epoch by epoch through one fine-tune, and when each first moved: does the model break inside
/// (attention, representations, curvature) before retention accuracy drops outside?
/// </summary>
public sealed record ForgettingTimeline
{
    /// <summary>Label of the run, for instance "LoRA on ag_news".</summary>
    public required string Label { get; init; }

    /// <summary>Retention tasks, in order; the first one also feeds the drift, sharpness and conflict signals.</summary>
    public required string[] RetentionTasks { get; init; }

    /// <summary>Points in epoch order, epoch 0 first.</summary>
    public required IReadOnlyList<TimelinePoint> Points { get; init; }

    /// <summary>Thresholds the onsets use.</summary>
    public required TimelineThresholds Thresholds { get; init; }

    /// <summary>Per signal, the first epoch at which it crossed its threshold.</summary>
    public IReadOnlyList<SignalOnset> Onsets => ComputeOnsets(Points, Thresholds);

    /// <summary>
    /// "inside-first" (an internal signal crossed strictly before retention dropped), "same-epoch", "outside-first",
    /// "inside-only" (retention never dropped), "outside-only", or "none".
    /// </summary>
    public string Verdict
    {
        get
        {
            var onsets = Onsets;
            int? outside = onsets.Single(o => !o.IsInternal).FirstEpoch;
            int? inside = onsets.Where(o => o.IsInternal && o.FirstEpoch is not null).Select(o => o.FirstEpoch).Min();
            return (inside, outside) switch
            {
                (null, null) => "none",
                (not null, null) => "inside-only",
                (null, not null) => "outside-only",
                var (i, o) when i < o => "inside-first",
                var (i, o) when i == o => "same-epoch",
                _ => "outside-first",
            };
        }
    }

    /// <summary>The internal signals ordered by onset, ties joined by "=", never-crossed last: the observed cascade.</summary>
    public string CascadeOrder
    {
        get
        {
            var groups = Onsets.Where(o => o.IsInternal)
                .GroupBy(o => o.FirstEpoch)
                .OrderBy(g => g.Key ?? int.MaxValue)
                .Select(g => string.Join(" = ", g.Select(o => o.Signal)) + (g.Key is { } e ? $" (epoch {e})" : " (never)"));
            return string.Join(" → ", groups);
        }
    }

    /// <summary>Onsets from points and thresholds (epoch 0 is the baseline and never counts as an onset).</summary>
    public static IReadOnlyList<SignalOnset> ComputeOnsets(IReadOnlyList<TimelinePoint> points, TimelineThresholds thresholds)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(thresholds);
        var trained = points.Where(p => p.Epoch > 0).OrderBy(p => p.Epoch).ToList();
        int? First(Func<TimelinePoint, bool> crossed) => trained.FirstOrDefault(crossed)?.Epoch;

        var start = points.FirstOrDefault(p => p.Epoch == 0);
        double? lambda0 = start?.TopHessianEigenvalue;
        int? sharpnessEpoch = null;
        string? direction = null;
        if (lambda0 is { } l0 && l0 != 0)
        {
            var hit = trained.FirstOrDefault(p => p.TopHessianEigenvalue is { } l && Math.Abs(l - l0) / Math.Abs(l0) >= thresholds.SharpnessChange);
            if (hit is not null)
            {
                sharpnessEpoch = hit.Epoch;
                direction = Math.Abs(hit.TopHessianEigenvalue!.Value) > Math.Abs(l0) ? "sharper" : "flatter";
            }
        }

        return
        [
            new SignalOnset("retention", false, thresholds.RetentionDrop, First(p => p.RetentionDrop >= thresholds.RetentionDrop)),
            new SignalOnset("attention", true, thresholds.AttentionDrift, First(p => p.MaxAttentionDrift >= thresholds.AttentionDrift)),
            new SignalOnset("representation", true, thresholds.RepresentationDrift, First(p => p.MaxRepresentationDrift >= thresholds.RepresentationDrift)),
            new SignalOnset("sharpness", true, thresholds.SharpnessChange, sharpnessEpoch, direction),
        ];
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Timeline: {Label} (retention on {string.Join(", ", RetentionTasks)})");
        sb.AppendLine("epoch  train-loss  retention-drop  max-repr-drift  max-attn-JS  heads>thr  top-eig      SAM        conflict(W)  conflict(A)");
        foreach (var p in Points)
        {
            sb.AppendLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{p.Epoch,5}  {Fmt(p.TrainingLoss),10}  {p.RetentionDrop,14:F4}  {p.MaxRepresentationDrift,14:F4}  {p.MaxAttentionDrift,11:F4}  {p.ShareOfHeadsAbove,9:P0}  {Fmt(p.TopHessianEigenvalue, "G4"),11}  {Fmt(p.SamSharpness, "G3"),9}  {Fmt(p.WeightMatrixConflictRate, "P0"),11}  {Fmt(p.AdapterConflictRate, "P0"),11}"));
        }
        foreach (var o in Onsets)
            sb.AppendLine($"  onset {o.Signal,-14} threshold {o.Threshold:G3}: {(o.FirstEpoch is { } e ? $"epoch {e}" : "never")}{(o.Direction is { } d ? $" ({d})" : "")}");
        sb.AppendLine($"  cascade: {CascadeOrder}");
        sb.AppendLine($"  verdict: {Verdict}");
        return sb.ToString();
    }

    private static string Fmt(double? value, string format = "F4") =>
        value is { } v ? v.ToString(format, System.Globalization.CultureInfo.InvariantCulture) : "-";
}
