namespace MLNet.Lora.Forgetting;

/// <summary>
/// How far a candidate moved inside, relative to a reference, on the same inputs: representation drift per layer and
/// attention drift per layer and head.
/// </summary>
public sealed record InternalComparison
{
    /// <summary>The task whose inputs were fed to both models.</summary>
    public required string Task { get; init; }

    /// <summary>The reference model's name.</summary>
    public required string Reference { get; init; }

    /// <summary>The candidate model's name.</summary>
    public required string Candidate { get; init; }

    /// <summary>Number of examples compared.</summary>
    public int Examples { get; init; }

    /// <summary>
    /// 1 − linear CKA (Kornblith et al. 2019) between the two models' hidden states, mean-pooled over real tokens, per
    /// hidden state: index 0 is the embeddings' output, index l the output of transformer layer l. 0 = same
    /// representation up to rotation and scale.
    /// </summary>
    public required double[] RepresentationDrift { get; init; }

    /// <summary>
    /// Mean base-2 Jensen–Shannon divergence (Lin 1991) between the two models' attention rows of real query tokens,
    /// per transformer layer (index 0 = layer 1) and head; each in [0, 1] bits.
    /// </summary>
    public required double[][] AttentionDrift { get; init; }

    /// <summary>Mean over heads of <see cref="AttentionDrift"/>, per layer.</summary>
    public required double[] MeanAttentionDriftPerLayer { get; init; }

    /// <summary>The per-head divergence above which a head counts as disrupted.</summary>
    public double HeadThreshold { get; init; }

    /// <summary>Share of all heads whose divergence is above <see cref="HeadThreshold"/>.</summary>
    public double ShareOfHeadsAbove { get; init; }

    /// <summary>Mean of <see cref="RepresentationDrift"/> over every hidden state, the embeddings' output included.</summary>
    public double MeanRepresentationDrift => RepresentationDrift.DefaultIfEmpty(0).Average();

    /// <summary>Mean of <see cref="AttentionDrift"/> over every layer and head.</summary>
    public double MeanAttentionDrift => AttentionDrift.SelectMany(h => h).DefaultIfEmpty(0).Average();
}
