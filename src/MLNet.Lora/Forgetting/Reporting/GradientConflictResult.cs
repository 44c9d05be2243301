namespace MLNet.Lora.Forgetting;

/// <summary>
/// Gradient conflict between an old task's loss and a new task's loss at one model: per module kind, the mean cosine
/// between the two gradients and the conflict rate (share of (batch, module) pairs with a negative cosine; Yu et al.
/// 2020 call such gradients conflicting).
/// </summary>
public sealed record GradientConflictResult
{
    /// <summary>The task whose knowledge should be kept.</summary>
    public required string OldTask { get; init; }

    /// <summary>The task being learnt.</summary>
    public required string NewTask { get; init; }

    /// <summary>The model at which the gradients were taken.</summary>
    public required string Model { get; init; }

    /// <summary>Number of paired batches (one of each task per batch).</summary>
    public int Batches { get; init; }

    /// <summary>Examples per batch.</summary>
    public int BatchSize { get; init; }

    /// <summary>
    /// Per module kind, over every layer's weight matrix W (the base weights; for an adapted layer the gradient with
    /// respect to W equals that with respect to W + ΔW): what full fine-tuning would follow.
    /// </summary>
    public required IReadOnlyList<GradientConflictSummary> WeightMatrices { get; init; }

    /// <summary>Per module kind, over the adapters' factors A and B taken together: what LoRA follows. Empty when not measured.</summary>
    public required IReadOnlyList<GradientConflictSummary> Adapters { get; init; }

    /// <summary>Why <see cref="Adapters"/> is empty, when it is (for instance "the model has no adapters").</summary>
    public string? AdapterNote { get; init; }

    /// <summary>Share of all (batch, weight matrix) pairs with a negative cosine; NaN when every pair was skipped.</summary>
    public double WeightMatrixConflictRate { get; init; }

    /// <summary>Share of all (batch, adapted module) pairs with a negative cosine; NaN when no adapter was measured.</summary>
    public double AdapterConflictRate { get; init; }

    /// <summary>
    /// Cosine between the old task's and the new task's gradients averaged over the batches, over all weight matrices
    /// together; NaN when either mean gradient is exactly zero.
    /// </summary>
    public double MeanGradientCosine { get; init; }

    /// <summary>
    /// (batch, module) pairs left out because a gradient was exactly zero (a saturated read-out, or a module the loss
    /// does not reach): such a pair has no angle, and counting it as cosine 0 would pass for "no conflict".
    /// </summary>
    public int SkippedPairs { get; init; }
}
