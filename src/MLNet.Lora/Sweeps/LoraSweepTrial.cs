using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>One trained and scored point of a sweep.</summary>
public sealed record LoraSweepTrial
{
    /// <summary>1-based trial number, in the order trained.</summary>
    public int Number { get; init; }

    /// <summary>Successive-halving round (0 first); always 0 in a grid.</summary>
    public int Rung { get; init; }

    /// <summary>The LoRA settings.</summary>
    public required LoraTrialSettings Settings { get; init; }

    /// <summary>Epochs trained.</summary>
    public int Epochs { get; init; }

    /// <summary>Validation micro accuracy (ML.NET's <c>MicroAccuracy</c>); NaN when the trial failed.</summary>
    public double Accuracy { get; init; } = double.NaN;

    /// <summary>Validation macro accuracy (ML.NET's <c>MacroAccuracy</c>: mean per-class recall).</summary>
    public double MacroAccuracy { get; init; } = double.NaN;

    /// <summary>Validation macro-F1, from ML.NET's confusion matrix.</summary>
    public double MacroF1 { get; init; } = double.NaN;

    /// <summary>Validation log-loss.</summary>
    public double LogLoss { get; init; } = double.NaN;

    /// <summary>Parameters trained: adapters and classification head.</summary>
    public long TrainableParameters { get; init; }

    /// <summary>Bytes of the model file <c>SaveWithAdapters</c> writes, or null when not measured.</summary>
    public long? AdapterFileBytes { get; init; }

    /// <summary>Wall time of the fit.</summary>
    public TimeSpan TrainingTime { get; init; }

    /// <summary>Processor time the process spent during the fit (all threads): steadier than wall time on a shared machine.</summary>
    public TimeSpan TrainingCpuTime { get; init; }

    /// <summary>The sweep's forgetting score (lower is better), or null without a scorer.</summary>
    public double? Forgetting { get; init; }

    /// <summary>Whether no other trial is at least as good on every objective and better on one (see <see cref="ParetoFront"/>).</summary>
    public bool IsParetoOptimal { get; init; }

    /// <summary>Successive halving: whether the trial's settings went on to the next round.</summary>
    public bool Promoted { get; init; }

    /// <summary>Whether this trial produced <see cref="LoraSweepResult.BestModel"/>.</summary>
    public bool IsBest { get; init; }

    /// <summary>Why the trial failed, or null.</summary>
    public string? Error { get; init; }

    /// <summary>The fit's per-epoch figures.</summary>
    public IReadOnlyList<EpochSummary> TrainingHistory { get; init; } = [];

    /// <summary>Whether the trial trained and was scored.</summary>
    public bool Succeeded => Error is null && !double.IsNaN(Accuracy);

    /// <summary>The value of <paramref name="metric"/>.</summary>
    public double Score(SweepMetric metric) => metric == SweepMetric.MacroF1 ? MacroF1 : Accuracy;

    /// <inheritdoc/>
    public override string ToString() => Succeeded
        ? $"#{Number} {Settings} epochs={Epochs}: accuracy {Accuracy:F4}, macro-F1 {MacroF1:F4}, {TrainableParameters:N0} trainable" +
          (AdapterFileBytes is { } b ? $", {b / 1024.0:F0} KiB" : "") + $", {TrainingTime.TotalSeconds:F1} s" +
          (Forgetting is { } f ? $", forgetting {f:F4}" : "")
        : $"#{Number} {Settings} epochs={Epochs}: failed: {Error}";
}
