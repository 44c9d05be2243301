namespace MLNet.Lora.Forgetting;

/// <summary>
/// What a candidate still knows of one retention task that the reference knew, measured with linear probes on pooled
/// features.
/// </summary>
public sealed record RetentionResult
{
    /// <summary>The retention task.</summary>
    public required string Task { get; init; }

    /// <summary>The reference model's name.</summary>
    public required string Reference { get; init; }

    /// <summary>The candidate model's name.</summary>
    public required string Candidate { get; init; }

    /// <summary>Number of classes.</summary>
    public int ClassCount { get; init; }

    /// <summary>Rows the probes were fitted on.</summary>
    public int ProbeTrainExamples { get; init; }

    /// <summary>Held-out rows the accuracies are measured on.</summary>
    public int TestExamples { get; init; }

    /// <summary>Share of the most frequent class among the test rows: the accuracy of always guessing it.</summary>
    public double MajorityClassAccuracy { get; init; }

    /// <summary>Accuracy of a probe fitted on the reference's features, on the reference's features.</summary>
    public double ReferenceAccuracy { get; init; }

    /// <summary>The same probe, unchanged, on the candidate's features: does the old read-out still work?</summary>
    public double FrozenProbeAccuracy { get; init; }

    /// <summary><see cref="ReferenceAccuracy"/> − <see cref="FrozenProbeAccuracy"/>: the forgetting a fixed read-out sees.</summary>
    public double FrozenProbeDrop { get; init; }

    /// <summary>Accuracy of a fresh probe fitted on the candidate's features: what is still linearly recoverable.</summary>
    public double RefitProbeAccuracy { get; init; }

    /// <summary><see cref="ReferenceAccuracy"/> − <see cref="RefitProbeAccuracy"/>: knowledge lost for good (to a linear read-out).</summary>
    public double RefitProbeDrop { get; init; }
}
