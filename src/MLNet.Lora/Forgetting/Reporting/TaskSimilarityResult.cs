namespace MLNet.Lora.Forgetting;

/// <summary>How similar two tasks look to one model.</summary>
public sealed record TaskSimilarityResult
{
    /// <summary>The first task.</summary>
    public required string TaskA { get; init; }

    /// <summary>The second task.</summary>
    public required string TaskB { get; init; }

    /// <summary>The model whose features and gradients were used.</summary>
    public required string Model { get; init; }

    /// <summary>
    /// <see cref="TaskSimilarity.RepresentationAlignment"/> of the two tasks' pooled features: linear CKA with the feature
    /// dimensions as the paired axis, in [0, 1].
    /// </summary>
    public double RepresentationSimilarity { get; init; }

    /// <summary>Cosine between the two tasks' mean loss gradients over every weight matrix, each task read out by a linear probe; in [−1, 1].</summary>
    public double GradientCosine { get; init; }
}
