using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>How a sweep spends its training budget.</summary>
public enum SweepStrategy
{
    /// <summary>Train every point of the search space for <see cref="LoraSweepOptions.Epochs"/> epochs.</summary>
    Grid,

    /// <summary>
    /// Train every point briefly (<see cref="LoraSweepOptions.HalvingMinEpochs"/>), keep the best
    /// <see cref="LoraSweepOptions.HalvingKeepFraction"/>, train those again with
    /// <see cref="LoraSweepOptions.HalvingEpochFactor"/> times as many epochs, and so on up to
    /// <see cref="LoraSweepOptions.HalvingMaxEpochs"/> or a single survivor (successive halving, Jamieson and Talwalkar 2016).
    /// </summary>
    SuccessiveHalving,
}

/// <summary>The validation metric that ranks trials (and picks the best model).</summary>
public enum SweepMetric
{
    /// <summary>Micro accuracy: the share of validation rows predicted right.</summary>
    Accuracy,

    /// <summary>Macro-averaged F1 over the classes, from ML.NET's confusion matrix: better than accuracy on unbalanced classes.</summary>
    MacroF1,
}

/// <summary>Settings of a <see cref="LoraSweep"/>.</summary>
public sealed class LoraSweepOptions
{
    /// <summary>The points to try.</summary>
    public LoraSearchSpace SearchSpace = new();

    /// <summary>
    /// Everything that is not swept: columns, base model or <see cref="LoraTextClassificationTrainer.Options.Encoder"/>, batch
    /// size, sequence length, seed, and so on. Each trial trains with a copy whose rank, alpha, target modules, learning rate
    /// and epochs come from the sweep. Its <c>Mode</c> must be LoRA; its <c>Progress</c>, <c>Seed</c> and
    /// <c>CancellationToken</c> are replaced by the sweep's (one seed for every trial); <c>EpochEnded</c> is kept.
    /// </summary>
    public LoraTextClassificationTrainer.Options BaseOptions = new();

    /// <summary>Grid or successive halving.</summary>
    public SweepStrategy Strategy = SweepStrategy.Grid;

    /// <summary>The metric that ranks trials, promotes survivors and picks <see cref="LoraSweepResult.BestModel"/>.</summary>
    public SweepMetric Metric = SweepMetric.Accuracy;

    /// <summary>Grid: epochs per trial; null uses <see cref="BaseOptions"/>' <c>MaxEpochs</c>.</summary>
    public int? Epochs;

    /// <summary>Successive halving: epochs of the first round, which trains every point.</summary>
    public int HalvingMinEpochs = 1;

    /// <summary>Successive halving: the most epochs a survivor trains; null uses <see cref="BaseOptions"/>' <c>MaxEpochs</c>.</summary>
    public int? HalvingMaxEpochs;

    /// <summary>Successive halving: the share of a round's trials that go on to the next (at least one does).</summary>
    public double HalvingKeepFraction = 0.5;

    /// <summary>Successive halving: each round trains this many times the previous round's epochs (rounded up, capped at the maximum).</summary>
    public double HalvingEpochFactor = 2;

    /// <summary>
    /// Optional forgetting score of a fitted trial: how much of what the base model knew the adapters lost, lower is
    /// better (for example an accuracy drop in points). It joins the Pareto front's objectives and the CSV. Plug in any
    /// measure: <see cref="ProbeRetentionScorer"/> here, or a ForgettingEvaluator's score
    /// (<c>ForgettingScorer = model =&gt; evaluator.Evaluate(model).AverageForgetting</c>).
    /// </summary>
    public Func<LoraTextClassificationTransformer, double>? ForgettingScorer;

    /// <summary>Save each trial with <c>SaveWithAdapters</c> to a temporary file to record its size on disk (default true).</summary>
    public bool MeasureAdapterFileSize = true;

    /// <summary>
    /// Record a trial whose training diverges (<see cref="TrainingDivergedException"/>: a NaN or infinite loss at a high
    /// learning rate, say) and go on; every other error (bad columns, bad options, device errors) stops the sweep at once.
    /// Default true.
    /// </summary>
    public bool ContinueAfterFailedTrial = true;

    /// <summary>
    /// Receives a report when a trial starts, as it trains (the trainer's own reports) and when it ends. Called on the
    /// training thread; <c>Progress&lt;T&gt;</c> posts to its synchronisation context instead.
    /// </summary>
    public IProgress<LoraSweepProgress>? Progress;

    /// <summary>Stops the sweep: the trial in training stops at its next step and <see cref="LoraSweep.Run"/> throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken;

    internal LoraSweepOptions Validate()
    {
        static void Check(bool ok, string name, object? value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{nameof(LoraSweepOptions)}.{name} {rule} (was {value}).");
        }
        Check(SearchSpace is not null, nameof(SearchSpace), null, "must be set");
        Check(BaseOptions is not null, nameof(BaseOptions), null, "must be set");
        SearchSpace!.Validate();
        BaseOptions!.Validate();
        Check(BaseOptions.Mode == FineTuningMode.Lora, $"{nameof(BaseOptions)}.{nameof(BaseOptions.Mode)}", BaseOptions.Mode, "must be Lora: a sweep over LoRA settings trains adapters");
        Check(Enum.IsDefined(Strategy), nameof(Strategy), Strategy, "must be Grid or SuccessiveHalving");
        Check(Enum.IsDefined(Metric), nameof(Metric), Metric, "must be Accuracy or MacroF1");
        Check(Epochs is null or > 0, nameof(Epochs), Epochs, "must be positive");
        Check(HalvingMinEpochs > 0, nameof(HalvingMinEpochs), HalvingMinEpochs, "must be positive");
        Check(HalvingMaxEpochs is null || HalvingMaxEpochs >= HalvingMinEpochs, nameof(HalvingMaxEpochs), HalvingMaxEpochs, $"must be at least {nameof(HalvingMinEpochs)} ({HalvingMinEpochs})");
        Check(HalvingKeepFraction > 0 && HalvingKeepFraction < 1, nameof(HalvingKeepFraction), HalvingKeepFraction, "must be in (0, 1)");
        Check(HalvingEpochFactor > 1 && double.IsFinite(HalvingEpochFactor), nameof(HalvingEpochFactor), HalvingEpochFactor, "must be greater than 1");
        return this;
    }

    /// <summary>The rounds this sweep trains for <paramref name="points"/> points: one for a grid, successive halving's schedule otherwise.</summary>
    internal IReadOnlyList<SweepRound> Rounds(int points) => Strategy == SweepStrategy.Grid
        ? [new SweepRound(points, GridEpochs)]
        : LoraSweep.PlanRounds(points, HalvingMinEpochs, HalvingCeiling, HalvingKeepFraction, HalvingEpochFactor);

    /// <summary>Grid epochs.</summary>
    internal int GridEpochs => Epochs ?? BaseOptions.MaxEpochs;

    /// <summary>Successive halving's ceiling.</summary>
    internal int HalvingCeiling => Math.Max(HalvingMaxEpochs ?? BaseOptions.MaxEpochs, HalvingMinEpochs);
}
