namespace MLNet.Lora.Forgetting;

/// <summary>When each timeline signal counts as having moved. Defaults are conventions, not laws: the raw values are in the timeline.</summary>
public sealed record TimelineThresholds
{
    /// <summary>
    /// External signal: mean frozen-probe accuracy drop (absolute, 0.05 = 5 points). On a few hundred test rows an
    /// accuracy change of 2–3 points is within noise (a paired change on 300 rows in which a fifth of the predictions flip
    /// has a standard deviation of about 2.6 points); 5 points is about two of those.
    /// </summary>
    public double RetentionDrop { get; init; } = 0.05;

    /// <summary>Representation signal: largest per-layer 1 − CKA.</summary>
    public double RepresentationDrift { get; init; } = 0.05;

    /// <summary>Attention signal: largest per-layer mean Jensen–Shannon divergence, in bits.</summary>
    public double AttentionDrift { get; init; } = 0.02;

    /// <summary>Curvature signal: |λ_e − λ_0| / |λ_0| of the top Hessian eigenvalue against epoch 0.</summary>
    public double SharpnessChange { get; init; } = 0.25;
}
