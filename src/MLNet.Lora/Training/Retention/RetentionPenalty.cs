namespace MLNet.Lora.Training;

/// <summary>Which retention penalty a fine-tune adds to its loss.</summary>
public enum RetentionPenaltyKind
{
    /// <summary>
    /// L2-SP (Li, Grandvalet &amp; Davoine 2018, "Explicit Inductive Bias for Transfer Learning with Convolutional
    /// Networks"): (λ/2)·‖θ − θ₀‖² over the encoder weights that train, θ₀ their values when the fit starts. Costs one
    /// copy of the trainable encoder weights and an elementwise pass per step. In LoRA mode with a fresh adapter θ₀ is
    /// A's random start and B = 0, so it mostly limits B (the size of the update); it holds what earlier training left
    /// when the adapter continues one (a task sequence's shared adapter, <c>InitialAdapter</c>).
    /// </summary>
    L2SP,

    /// <summary>
    /// Elastic weight consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks"):
    /// (λ/2)·Σ F_k (θ_k − θ₀_k)², F the diagonal empirical Fisher of the retention tasks' loss at θ₀ (mean squared
    /// per-example gradient, each task read out by a probe fitted on the start model, or by its own head in a task
    /// sequence), scaled to mean 1 so that λ is on L2-SP's scale. With a fresh adapter (B = 0) A's Fisher is zero, so
    /// only B is held. Costs one forward and backward pass per Fisher example before training, and two copies of the
    /// trainable encoder weights.
    /// </summary>
    Ewc,
}

/// <summary>A penalty on moving away from the weights a fit starts from (the trainer's <c>Options.RetentionPenalty</c>).</summary>
/// <param name="Kind">L2-SP (every weight alike) or EWC (weighted by each weight's Fisher information).</param>
/// <param name="Strength">λ, finite and not negative; 0 turns the penalty off.</param>
public sealed record RetentionPenalty(RetentionPenaltyKind Kind, double Strength)
{
    /// <summary>EWC: the examples, across the retention tasks, whose per-example gradients estimate the Fisher diagonal.</summary>
    public int FisherExamples { get; init; } = 256;

    /// <summary>Refuses a strength that is negative or not finite, an unknown kind, or EWC without Fisher examples, naming <paramref name="option"/>.</summary>
    internal void Validate(string option)
    {
        if (!Enum.IsDefined(Kind)) throw new ArgumentOutOfRangeException(option, Kind, $"{option}.Kind is not a known penalty (was {Kind}).");
        if (!(Strength >= 0) || !double.IsFinite(Strength))
            throw new ArgumentOutOfRangeException(option, Strength, $"{option}.Strength must be a finite number ≥ 0 (was {Strength}).");
        if (Kind == RetentionPenaltyKind.Ewc && FisherExamples <= 0)
            throw new ArgumentOutOfRangeException(option, FisherExamples, $"{option}.FisherExamples must be positive (was {FisherExamples}).");
    }

    /// <summary>L2-SP with strength λ.</summary>
    public static RetentionPenalty L2SP(double strength) => new(RetentionPenaltyKind.L2SP, strength);

    /// <summary>EWC with strength λ.</summary>
    public static RetentionPenalty Ewc(double strength, int fisherExamples = 256) => new(RetentionPenaltyKind.Ewc, strength) { FisherExamples = fisherExamples };
}
