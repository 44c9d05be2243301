using MLNet.Lora.IO;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Everything the forgetting tools measured: retention after a fine-tune, drift inside the model, gradient conflict,
/// sharpness, task similarity, task sequences and timelines. Sections that were not measured are empty. Print it
/// (<see cref="ToString"/>), save it as JSON (<see cref="SaveJson"/>), or draw it (MLNet.Lora.Charts' <c>ForgettingCharts.SaveCharts</c>).
/// </summary>
public sealed record ForgettingReport
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        // NaN marks "not measured" or "undefined" (a correlation of two points); JSON has no literal for it.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Per retention task and candidate: frozen-probe and refit-probe accuracy against the reference.</summary>
    public IReadOnlyList<RetentionResult> Retention { get; init; } = [];

    /// <summary>Per retention task and candidate: representation and attention drift against the reference.</summary>
    public IReadOnlyList<InternalComparison> Internals { get; init; } = [];

    /// <summary>Sharpness of old-task losses.</summary>
    public IReadOnlyList<SharpnessResult> Sharpness { get; init; } = [];

    /// <summary>Gradient conflict between old and new tasks.</summary>
    public IReadOnlyList<GradientConflictResult> GradientConflicts { get; init; } = [];

    /// <summary>Task similarities.</summary>
    public IReadOnlyList<TaskSimilarityResult> Similarities { get; init; } = [];

    /// <summary>Task sequences, one per strategy.</summary>
    public IReadOnlyList<SequenceResult> Sequences { get; init; } = [];

    /// <summary>Epoch-by-epoch timelines of fine-tunes.</summary>
    public IReadOnlyList<ForgettingTimeline> Timelines { get; init; } = [];

    /// <summary>Correlations between task similarity and forgetting.</summary>
    public IReadOnlyList<SimilarityForgettingCorrelation> Correlations { get; init; } = [];

    /// <summary>Which definition and convention each number uses (written into the JSON so that it travels with the numbers).</summary>
    public IReadOnlyDictionary<string, string> Conventions => ConventionTexts;

    private static readonly IReadOnlyDictionary<string, string> ConventionTexts = new Dictionary<string, string>
    {
        ["FrozenProbeDrop"] = "reference accuracy − accuracy of the reference's linear probe (L-BFGS maximum entropy on standardised pooled features) applied unchanged to the candidate's features",
        ["RefitProbeDrop"] = "reference accuracy − accuracy of a probe refitted on the candidate's features (what is still linearly recoverable)",
        ["RepresentationDrift"] = "1 − linear CKA (Kornblith et al. 2019) of hidden states mean-pooled over real tokens; index 0 = embeddings",
        ["AttentionDrift"] = "mean base-2 Jensen–Shannon divergence (Lin 1991) between attention rows of real query tokens, per layer and head, in bits",
        ["GradientConflict"] = "cosine between old-task and new-task loss gradients per (batch, weight matrix); conflict rate = share of negative cosines (Yu et al. 2020)",
        ["Sharpness"] = "top Hessian eigenvalue by power iteration on Hessian-vector products (Pearlmutter 1994) and SAM sharpness L(w + ρ g/‖g‖) − L(w) (Foret et al. 2021)",
        ["TaskSimilarity"] = "representation: linear CKA of two tasks' pooled features with feature dimensions paired (cosine of feature covariances); gradient: cosine of mean loss gradients over all weight matrices",
        ["AverageForgetting"] = "max convention (Chaudhry et al. 2018): mean over j < T−1 of max_{l<T−1} R[l][j] − R[T−1][j]",
        ["AverageForgettingFirst"] = "first convention (Avalanche): mean over j < T−1 of R[j][j] − R[T−1][j]",
        ["BackwardTransfer"] = "Lopez-Paz & Ranzato 2017: mean over i < T−1 of R[T−1][i] − R[i][i]",
        ["ForwardTransfer"] = "Lopez-Paz & Ranzato 2017: mean over i ≥ 1 of R[i−1][i] − b[i]; R[i−1][i] and b[i] are linear-probe accuracies (task i has no head yet), b on the untouched start model",
        ["StepForgetting"] = "R[j−1][i] − R[j][i]: accuracy of old task i lost while training task j",
    };

    /// <summary>A report holding this report's sections followed by <paramref name="other"/>'s (identical task similarities are not repeated).</summary>
    /// <param name="other">The report to append.</param>
    public ForgettingReport Merge(ForgettingReport other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new ForgettingReport
        {
            Retention = [.. Retention, .. other.Retention],
            Internals = [.. Internals, .. other.Internals],
            Sharpness = [.. Sharpness, .. other.Sharpness],
            GradientConflicts = [.. GradientConflicts, .. other.GradientConflicts],
            // The same pair measured identically twice (once per candidate of the same reference) is one result.
            Similarities = [.. Similarities, .. other.Similarities.Where(o => !Similarities.Contains(o))],
            Sequences = [.. Sequences, .. other.Sequences],
            Timelines = [.. Timelines, .. other.Timelines],
            Correlations = [.. Correlations, .. other.Correlations],
        };
    }

    /// <summary>The report as indented JSON (enums as names, NaN as "NaN").</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <exception cref="JsonException">The text is not a report.</exception>
    public static ForgettingReport FromJson(string json) =>
        JsonSerializer.Deserialize<ForgettingReport>(json, Json) ?? throw new JsonException("The JSON holds null, not a forgetting report.");

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> atomically (a temporary file beside it, then a rename).</summary>
    /// <param name="path">The file to write; its folder is created when missing.</param>
    public void SaveJson(string path) => AtomicFile.WriteAllText(path, ToJson());

    /// <summary>Reads a report saved by <see cref="SaveJson"/>.</summary>
    /// <param name="path">The JSON file.</param>
    public static ForgettingReport LoadJson(string path) => FromJson(File.ReadAllText(path));

    /// <summary>Writes <see cref="ToString"/> to <paramref name="path"/> atomically.</summary>
    /// <param name="path">The file to write.</param>
    public void SaveText(string path) => AtomicFile.WriteAllText(path, ToString());

    /// <summary>A readable summary: one table per section that holds data, each naming its conventions.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        void Line(string text = "") => sb.AppendLine(text);

        if (Retention.Count > 0)
        {
            Line("== Retention (linear probes on pooled features; drop = reference − candidate, positive = forgotten)");
            Line($"{"task",-12} {"candidate",-22} {"classes",7} {"majority",9} {"reference",9} {"frozen",8} {"drop",8} {"refit",8} {"drop",8}");
            foreach (var r in Retention)
                Line(string.Create(c, $"{r.Task,-12} {Cut(r.Candidate, 22),-22} {r.ClassCount,7} {r.MajorityClassAccuracy,9:P1} {r.ReferenceAccuracy,9:P1} {r.FrozenProbeAccuracy,8:P1} {Signed(r.FrozenProbeDrop),8} {r.RefitProbeAccuracy,8:P1} {Signed(r.RefitProbeDrop),8}"));
            Line();
        }

        if (Internals.Count > 0)
        {
            Line("== Drift inside (representation: 1 − linear CKA per hidden state, 0 = embeddings; attention: mean JS bits per layer)");
            foreach (var d in Internals)
            {
                Line($"{d.Task} — {d.Reference} vs {d.Candidate} ({d.Examples} inputs)");
                Line("  representation " + string.Join(" ", d.RepresentationDrift.Select(v => v.ToString("F3", c))));
                Line("  attention      " + string.Join(" ", d.MeanAttentionDriftPerLayer.Select(v => v.ToString("F3", c))) +
                     string.Create(c, $"   heads above {d.HeadThreshold:G3} bits: {d.ShareOfHeadsAbove:P0}"));
            }
            Line();
        }

        if (Sharpness.Count > 0)
        {
            Line("== Sharpness of the old task's loss (top Hessian eigenvalue; SAM: L(w + ρ g/‖g‖) − L(w))");
            Line($"{"task",-12} {"model",-30} {"parameters",-34} {"count",12} {"top eig",11} {"SAM",10}");
            foreach (var s in Sharpness)
                Line(string.Create(c, $"{s.Task,-12} {Cut(s.Model, 30),-30} {Cut(s.ParameterSet, 34),-34} {s.ParameterCount,12:N0} {s.TopHessianEigenvalue,11:G4} {s.SamSharpness,10:G3}"));
            Line();
        }

        if (GradientConflicts.Count > 0)
        {
            Line("== Gradient conflict (share of (batch, module) pairs with negative cosine; W = weight matrices, A = adapters)");
            AppendConflicts(sb, GradientConflicts);
            Line();
        }

        if (Similarities.Count > 0)
        {
            Line("== Task similarity (representation: CKA with paired feature dimensions; gradient: cosine of mean gradients)");
            foreach (var s in Similarities)
                Line(string.Create(c, $"{s.TaskA,-12} {s.TaskB,-12} at {Cut(s.Model, 24),-24} representation {s.RepresentationSimilarity:F3}  gradient {Signed(s.GradientCosine)}"));
            Line();
        }

        foreach (var q in Sequences)
        {
            Line($"== Task sequence: {q.Strategy} ({string.Join(" → ", q.Tasks)}), {q.Seconds:F0} s");
            Line("R[i][j] = accuracy on task j (column) after training through task i (row); entries above the diagonal are linear probes; b = probe on the start model");
            Line($"{"",-16}" + string.Concat(q.Tasks.Select(t => $"{Cut(t, 10),10}")));
            for (int i = 0; i < q.Tasks.Length; i++)
                Line($"after {Cut(q.Tasks[i], 10),-10}" + string.Concat(q.Accuracy[i].Select((v, j) => (v.ToString("P1", c) + (j > i ? "*" : " ")).PadLeft(10))));
            Line($"{"b",-16}" + string.Concat(q.Baseline.Select(v => (v.ToString("P1", c) + "*").PadLeft(10))));
            Line(string.Create(c, $"average accuracy {q.AverageAccuracy:P1}; average forgetting {Signed(q.AverageForgetting)} (max convention, Chaudhry 2018), {Signed(q.AverageForgettingFirst)} (first convention, Avalanche)"));
            Line(string.Create(c, $"BWT {Signed(q.BackwardTransfer)}, FWT {Signed(q.ForwardTransfer)} (Lopez-Paz & Ranzato 2017; FWT against the start model's probe)"));
            Line("trained encoder parameters per task: " + string.Join(", ", q.TrainedParameters.Select(n => n.ToString("N0", c))));
            foreach (var s in q.Steps)
                Line(string.Create(c, $"  step forgetting {s.OldTask} while training {s.NewTask}: {s.Before:P1} → {s.After:P1} ({Signed(s.Drop)})"));
            foreach (var s in q.Sharpness)
                Line(string.Create(c, $"  sharpness after {s.Task}: top eig {s.TopHessianEigenvalue:G4}, SAM {s.SamSharpness:G3} over {s.ParameterSet} ({s.ParameterCount:N0})"));
            if (q.GradientConflicts.Count > 0) AppendConflicts(sb, q.GradientConflicts, "  ");
            foreach (var d in q.Drift)
                Line($"  drift of {d.Task} ({d.Reference} → {d.Candidate}): representation " +
                     string.Join(" ", d.RepresentationDrift.Select(v => v.ToString("F3", c))) +
                     "; attention " + string.Join(" ", d.MeanAttentionDriftPerLayer.Select(v => v.ToString("F3", c))));
            Line();
        }

        if (Correlations.Count > 0)
        {
            Line("== Similarity vs forgetting (NaN: fewer than 3 pairs or no variance)");
            foreach (var r in Correlations)
            {
                Line(string.Create(c, $"{Cut(r.Source, 34),-34} {r.SimilarityMeasure,-14} n={r.Points.Count,-3} Pearson {r.Pearson,7:F3}  Spearman {r.Spearman,7:F3}"));
                foreach (var p in r.Points) Line(string.Create(c, $"    {p.Label,-28} similarity {p.Similarity,8:F3}  forgetting {Signed(p.Forgetting),8}"));
            }
            Line();
        }

        foreach (var t in Timelines) Line(t.ToString());
        return sb.Length == 0 ? "(empty forgetting report)" : sb.ToString();
    }

    private static void AppendConflicts(StringBuilder sb, IReadOnlyList<GradientConflictResult> conflicts, string indent = "")
    {
        var c = CultureInfo.InvariantCulture;
        var kinds = EncoderWeights.KindNames;
        sb.AppendLine(indent + $"{"old → new @ model",-52} " + string.Concat(kinds.Select(k => $"{Cut(k, 12),13}")) + "   all  mean-grad-cos  skipped");
        foreach (var g in conflicts)
        {
            string Row(IReadOnlyList<GradientConflictSummary> summaries) => string.Concat(kinds.Select(k =>
                summaries.FirstOrDefault(s => s.ModuleKind == k) is { } s ? s.ConflictRate.ToString("P0", c).PadLeft(13) : "-".PadLeft(13)));
            string head = Cut($"{g.OldTask} → {g.NewTask} @ {g.Model}", 48);
            sb.AppendLine(indent + $"{head,-48} W   " + Row(g.WeightMatrices) + g.WeightMatrixConflictRate.ToString("P0", c).PadLeft(6) + Signed(g.MeanGradientCosine).PadLeft(14) + g.SkippedPairs.ToString(c).PadLeft(9));
            if (g.Adapters.Count > 0)
                sb.AppendLine(indent + $"{"",-48} A   " + Row(g.Adapters) + g.AdapterConflictRate.ToString("P0", c).PadLeft(6));
            else if (g.AdapterNote is { } note)
                sb.AppendLine(indent + $"{"",-48} A   ({note})");
        }
    }

    /// <summary>Three decimals with an explicit sign; a value that rounds to zero prints as 0.000, never as "-0.000".</summary>
    private static string Signed(double value) =>
        double.IsNaN(value) ? "NaN" : (Math.Round(value, 3) + 0.0).ToString("+0.000;-0.000;0.000", CultureInfo.InvariantCulture);

    private static string Cut(string text, int width) => text.Length <= width ? text : text[..(width - 1)] + "…";
}
