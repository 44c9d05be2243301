namespace MLNet.Lora.Forgetting;

/// <summary>When each timeline signal counts as having moved. Defaults are conventions, not laws: the raw values are in the timeline.</summary>
public sealed record TimelineThresholds
{
    /// <summary>External signal: mean frozen-probe accuracy drop (absolute, 0.02 = 2 points).</summary>
    public double RetentionDrop { get; init; } = 0.02;

    /// <summary>Representation signal: largest per-layer 1 − CKA.</summary>
    public double RepresentationDrift { get; init; } = 0.05;

    /// <summary>Attention signal: largest per-layer mean Jensen–Shannon divergence, in bits.</summary>
    public double AttentionDrift { get; init; } = 0.02;

    /// <summary>Curvature signal: |λ_e − λ_0| / |λ_0| of the top Hessian eigenvalue against epoch 0.</summary>
    public double SharpnessChange { get; init; } = 0.25;
}
