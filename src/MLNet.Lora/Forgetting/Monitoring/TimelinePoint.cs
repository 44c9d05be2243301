namespace MLNet.Lora.Forgetting;

/// <summary>The forgetting signals after one epoch of a fine-tune (epoch 0: before training).</summary>
public sealed record TimelinePoint
{
    /// <summary>Epoch just finished (1-based); 0 is the reference before training.</summary>
    public int Epoch { get; init; }

    /// <summary>Mean training loss of the epoch (none at epoch 0).</summary>
    public double? TrainingLoss { get; init; }

    /// <summary>Validation accuracy of the task being trained, when the trainer had validation data.</summary>
    public double? ValidationAccuracy { get; init; }

    /// <summary>Per retention task: accuracy of the frozen probe (fitted on the reference) on the model's features.</summary>
    public required IReadOnlyDictionary<string, double> FrozenProbeAccuracy { get; init; }

    /// <summary>Per retention task: accuracy of a probe refitted on the model's features (when refitting was on).</summary>
    public required IReadOnlyDictionary<string, double> RefitProbeAccuracy { get; init; }

    /// <summary>Mean over retention tasks of reference accuracy − frozen-probe accuracy: the external signal.</summary>
    public double RetentionDrop { get; init; }

    /// <summary>1 − linear CKA against the reference per hidden state (0 = embeddings), on the first retention task's inputs.</summary>
    public required double[] RepresentationDrift { get; init; }

    /// <summary>Largest entry of <see cref="RepresentationDrift"/>.</summary>
    public double MaxRepresentationDrift { get; init; }

    /// <summary>Mean Jensen–Shannon divergence (bits) over heads against the reference, per layer.</summary>
    public required double[] AttentionDriftPerLayer { get; init; }

    /// <summary>Largest entry of <see cref="AttentionDriftPerLayer"/>.</summary>
    public double MaxAttentionDrift { get; init; }

    /// <summary>Share of heads whose divergence exceeds the per-head threshold.</summary>
    public double ShareOfHeadsAbove { get; init; }

    /// <summary>Top Hessian eigenvalue of the first retention task's loss (frozen probe) over the weight matrices; null when not measured.</summary>
    public double? TopHessianEigenvalue { get; init; }

    /// <summary>SAM sharpness of the same loss; null when not measured.</summary>
    public double? SamSharpness { get; init; }

    /// <summary>Conflict rate over weight matrices between the first retention task and the new task; null without a new task.</summary>
    public double? WeightMatrixConflictRate { get; init; }

    /// <summary>Conflict rate over the active adapter's factors; null without a new task or adapters.</summary>
    public double? AdapterConflictRate { get; init; }

    /// <summary>Seconds the measurements of this point took.</summary>
    public double MeasurementSeconds { get; init; }
}
