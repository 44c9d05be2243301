namespace MLNet.Lora.Training;

/// <summary>Which probe a <see cref="ForgettingBudget"/> reads the retention tasks with.</summary>
public enum RetentionProbe
{
    /// <summary>The probe fitted on the model before training, applied unchanged: the drop a fixed read-out sees.</summary>
    Frozen,

    /// <summary>A probe refitted at each check on the current features: knowledge no longer linearly recoverable (one probe fit per task per check).</summary>
    Refit,
}

/// <summary>
/// Stops a fine-tune once it has cost the retention tasks more than <paramref name="MaxDrop"/> of probe accuracy
/// (measured against the model before training) and keeps the best checkpoint still within the budget: the one with
/// the best validation accuracy when there is validation data, else the latest.
/// </summary>
/// <param name="MaxDrop">The largest mean accuracy drop over the retention tasks allowed, in [0, 1] (0.02 = two points).</param>
public sealed record ForgettingBudget(double MaxDrop)
{
    /// <summary>The probe the drop is read with.</summary>
    public RetentionProbe Probe { get; init; } = RetentionProbe.Frozen;

    /// <summary>Check every this many optimizer steps as well as after every epoch; null checks after epochs only.</summary>
    public int? EveryNSteps { get; init; }

    /// <summary>Held-out rows per retention task read at each check (a seeded sample; fewer make checks cheaper and noisier).</summary>
    public int MaxCheckRows { get; init; } = 300;

    /// <summary>Refuses a drop outside [0, 1], a non-positive step interval or an unknown probe, naming <paramref name="option"/>.</summary>
    internal void Validate(string option)
    {
        if (!(MaxDrop >= 0 && MaxDrop <= 1))
            throw new ArgumentOutOfRangeException(option, MaxDrop, $"{option}.MaxDrop must be in [0, 1] (was {MaxDrop}); 0.02 allows two points.");
        if (EveryNSteps is <= 0)
            throw new ArgumentOutOfRangeException(option, EveryNSteps, $"{option}.EveryNSteps must be positive or null (was {EveryNSteps}).");
        if (MaxCheckRows < 2) throw new ArgumentOutOfRangeException(option, MaxCheckRows, $"{option}.MaxCheckRows must be at least 2 (was {MaxCheckRows}).");
        if (!Enum.IsDefined(Probe)) throw new ArgumentOutOfRangeException(option, Probe, $"{option}.Probe is not a known probe (was {Probe}).");
    }
}

/// <summary>One check of a <see cref="ForgettingBudget"/>.</summary>
/// <param name="Epoch">The epoch the check ran in (1-based; 0 is the start).</param>
/// <param name="Step">Optimizer steps taken before the check.</param>
/// <param name="Drop">Mean probe-accuracy drop over the retention tasks against the start.</param>
/// <param name="WithinBudget">Whether the drop was within the budget.</param>
public sealed record ForgettingBudgetCheck(int Epoch, int Step, double Drop, bool WithinBudget);

/// <summary>What a <see cref="ForgettingBudget"/> did in a fit.</summary>
/// <param name="Budget">The budget.</param>
/// <param name="Checks">Every check, in order (the start's, with drop 0, first).</param>
/// <param name="StoppedEarly">Whether a check found the drop over budget (training ended there, even when that was its last step).</param>
/// <param name="KeptStep">The optimizer step whose weights the model kept (0: the start, when no step stayed within budget).</param>
public sealed record ForgettingBudgetOutcome(ForgettingBudget Budget, IReadOnlyList<ForgettingBudgetCheck> Checks, bool StoppedEarly, int KeptStep)
{
    /// <inheritdoc/>
    public override string ToString() =>
        (StoppedEarly ? $"stopped at step {Checks[^1].Step} (drop {Checks[^1].Drop:P1} > {Budget.MaxDrop:P1})" : $"ran to the end within {Budget.MaxDrop:P1}") +
        $", kept step {KeptStep}";
}
