using MLNet.Lora.Training;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// One way to train a task sequence in <see cref="ForgettingEvaluator.RunSequences(ComparedModel, IReadOnlyList{ForgettingTask}, IReadOnlyList{SequenceMethod}, IProgress{ForgettingProgress}?, CancellationToken)"/>:
/// a <see cref="SequenceStrategy"/> and the options that limit forgetting, each off by default. Every method lands in the
/// same accuracy matrix and the same ACC / forgetting / BWT / FWT summaries.
/// </summary>
/// <param name="Name">The method's name in reports (for instance "shared LoRA + rehearsal 10%").</param>
/// <param name="Strategy">What trains: every weight, one shared adapter, or adapters per task.</param>
public sealed record SequenceMethod(string Name, SequenceStrategy Strategy)
{
    /// <summary>
    /// Experience replay: for each new task, this many rows of the earlier tasks per new row (0.1 = one old row for every
    /// ten new ones) are mixed into every batch, each old row through its own task's head. 0 (the default) replays nothing.
    /// </summary>
    public double RehearsalRatio { get; init; }

    /// <summary>A penalty that holds the weights near what earlier tasks need (L2-SP or EWC); null for none.</summary>
    public RetentionPenalty? RetentionPenalty { get; init; }

    /// <summary>O-LoRA's λ for <see cref="SequenceStrategy.OrthogonalAdapters"/> (the paper's 0.5 by default); 0 stacks adapters without the penalty.</summary>
    public double OrthogonalityStrength { get; init; } = 0.5;

    /// <summary>For <see cref="SequenceStrategy.MergedAdapters"/>: the share of each adapter's update entries TIES keeps before merging.</summary>
    public double MergeDensity { get; init; } = 0.5;

    /// <summary>
    /// Stop each task's training once the earlier tasks' probe accuracy has dropped by more than the budget (measured
    /// against the model before that task), keeping the best checkpoint within budget; null for no budget.
    /// </summary>
    public ForgettingBudget? ForgettingBudget { get; init; }

    /// <summary>The plain strategy under its usual name, with no option that limits forgetting.</summary>
    public static SequenceMethod Of(SequenceStrategy strategy) => new(strategy switch
    {
        SequenceStrategy.FullFineTuning => "full fine-tuning",
        SequenceStrategy.SharedAdapter => "shared LoRA",
        SequenceStrategy.AdapterPerTask => "LoRA per task",
        SequenceStrategy.OrthogonalAdapters => "O-LoRA",
        SequenceStrategy.MergedAdapters => "merged adapters (TIES)",
        _ => throw new ArgumentOutOfRangeException(nameof(strategy), strategy, "Unknown strategy."),
    }, strategy);

    /// <summary>The plain strategy (<see cref="Of"/>), so that <c>[SequenceStrategy.SharedAdapter]</c> is a list of methods.</summary>
    public static implicit operator SequenceMethod(SequenceStrategy strategy) => Of(strategy);

    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>Refuses a setting out of range, or an option the strategy cannot use, naming the method and the setting.</summary>
    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name)) throw new ArgumentException("Every sequence method needs a non-blank Name.", nameof(Name));
        string at = $"{nameof(SequenceMethod)} '{Name}'";
        if (!Enum.IsDefined(Strategy)) throw new ArgumentOutOfRangeException(nameof(Strategy), Strategy, $"{at}: unknown strategy {Strategy}.");
        if (RehearsalRatio != 0) Rehearsal.ValidateRatio(RehearsalRatio, $"{at}.{nameof(RehearsalRatio)}");
        // With a fresh adapter per task that old tasks are never scored through, replay, a penalty or a budget would act
        // on weights no old task reads: nothing would be kept, so say so rather than run it.
        bool freshAdapters = Strategy is SequenceStrategy.AdapterPerTask or SequenceStrategy.MergedAdapters;
        string remedy = $"Use {nameof(SequenceStrategy.SharedAdapter)}, {nameof(SequenceStrategy.OrthogonalAdapters)} or {nameof(SequenceStrategy.FullFineTuning)}.";
        if (freshAdapters && RehearsalRatio > 0)
            throw new ArgumentException($"{at}: rehearsal with {Strategy} replays old rows through the new task's adapter, which no old task is scored with. {remedy}", nameof(RehearsalRatio));
        if (freshAdapters && RetentionPenalty is { Strength: > 0 })
            throw new ArgumentException($"{at}: a retention penalty with {Strategy} holds the new task's fresh adapter, which no old task's loss depends on (its Fisher is zero). {remedy}", nameof(RetentionPenalty));
        if (freshAdapters && ForgettingBudget is not null)
            throw new ArgumentException($"{at}: a forgetting budget with {Strategy} would measure the old tasks through the new task's adapter, which they are never scored with. {remedy}", nameof(ForgettingBudget));
        RetentionPenalty?.Validate($"{at}.{nameof(RetentionPenalty)}");
        ForgettingBudget?.Validate($"{at}.{nameof(ForgettingBudget)}");
        if (!(OrthogonalityStrength >= 0) || !double.IsFinite(OrthogonalityStrength))
            throw new ArgumentOutOfRangeException(nameof(OrthogonalityStrength), OrthogonalityStrength, $"{at}.{nameof(OrthogonalityStrength)} must be a finite number ≥ 0 (was {OrthogonalityStrength}).");
        if (!(MergeDensity > 0 && MergeDensity <= 1))
            throw new ArgumentOutOfRangeException(nameof(MergeDensity), MergeDensity, $"{at}.{nameof(MergeDensity)} must be in (0, 1] (was {MergeDensity}).");
    }
}
