using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Integration;
using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// Sweeps LoRA settings (rank, alpha, target modules, learning rate) over a <see cref="LoraSearchSpace"/>: trains a
/// <see cref="LoraTextClassificationTrainer"/> per point, scores it on validation data with ML.NET's multiclass metrics
/// (and macro-F1 and an optional forgetting score), marks the Pareto front of score against trainable parameters, and
/// keeps the best fitted model.
/// </summary>
/// <example>
/// <code>
/// var sweep = new LoraSweep(ml, new LoraSweepOptions
/// {
///     SearchSpace = LoraSearchSpace.OverRanks(1, 2, 4, 8, 16, 32),
///     BaseOptions = new() { LabelColumnName = "Label", TextColumnName = "Text", MaxSequenceLength = 64 },
///     Strategy = SweepStrategy.SuccessiveHalving,
///     HalvingMaxEpochs = 4,
/// });
/// using LoraSweepResult result = sweep.Run(train, validation);
/// result.SaveCsv("sweep.csv");
/// result.SaveChart("sweep.png");
/// ml.Model.SaveWithAdapters(result.BestModel, train.Schema, "best.zip");
/// </code>
/// </example>
public sealed class LoraSweep
{
    private readonly MLContext ml;
    private readonly LoraSweepOptions options;

    /// <summary>Creates a sweep; the options are checked now (the exception names the bad option).</summary>
    public LoraSweep(MLContext mlContext, LoraSweepOptions options)
    {
        ml = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
        this.options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
    }

    /// <summary>The sweep's settings.</summary>
    public LoraSweepOptions Options => options;

    /// <summary>
    /// Runs the sweep: trains on <paramref name="trainData"/>, scores on <paramref name="validationData"/> (same columns).
    /// The label may be a key or any type ML.NET's <c>MapValueToKey</c> takes; the sweep maps it to a key when needed, and
    /// the best model maps the predicted label back.
    /// </summary>
    /// <exception cref="OperationCanceledException">The options' cancellation token was cancelled.</exception>
    /// <exception cref="InvalidOperationException">Every trial failed.</exception>
    public LoraSweepResult Run(IDataView trainData, IDataView validationData)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        ArgumentNullException.ThrowIfNull(validationData);
        var token = options.CancellationToken;
        token.ThrowIfCancellationRequested();

        var host = MLContextAccess.EnvironmentOf(ml).Register("LoraSweep");
        using var channel = host.Start("Sweep");
        var clock = Stopwatch.StartNew();
        var points = options.SearchSpace.Points().ToList();
        var rounds = options.Strategy == SweepStrategy.Grid
            ? [new SweepRound(points.Count, options.GridEpochs)]
            : PlanRounds(points.Count, options.HalvingMinEpochs, options.HalvingCeiling, options.HalvingKeepFraction, options.HalvingEpochFactor);
        int planned = rounds.Sum(r => r.Count);
        // Every trial uses one seed, so that trials differ by their settings alone (same data order and head initialisation).
        int seed = options.BaseOptions.Seed ?? host.Rand.Next();
        channel.Info(MessageSensitivity.None, $"LoRA sweep ({options.Strategy}, by {options.Metric}): {options.SearchSpace}; " +
            $"rounds {string.Join(", ", rounds.Select(r => $"{r.Count}×{r.Epochs} epochs"))}; {planned} trials.");

        var data = PrepareData(trainData, validationData);
        PretrainedEncoder? ownedEncoder = null;
        FittedTrial? best = null;
        var trials = new List<LoraSweepTrial>();
        try
        {
            // Load the base once and share it: each trial copies its weights instead of reading the model again.
            var encoder = options.BaseOptions.Encoder;
            if (encoder is null)
            {
                channel.Info(MessageSensitivity.None, $"Loading the base encoder from {options.BaseOptions.BaseModel} once for all trials.");
                var cache = options.BaseOptions.CacheDirectory is null ? null : new CheckpointCache(options.BaseOptions.CacheDirectory);
                encoder = ownedEncoder = PretrainedEncoder.Load(options.BaseOptions.BaseModel, cache);
            }

            var current = points;
            for (int rung = 0; rung < rounds.Count && current.Count > 0; rung++)
            {
                var roundTrials = new List<int>();
                foreach (var settings in current)
                {
                    token.ThrowIfCancellationRequested();
                    int number = trials.Count + 1;
                    var fitted = RunTrialCore(data, settings, rounds[rung].Epochs, encoder, seed, number, planned, rung, channel);
                    trials.Add(fitted.Trial);
                    roundTrials.Add(trials.Count - 1);
                    if (fitted.Trial.Succeeded && (best is null || IsBetter(fitted.Trial, best.Trial)))
                    {
                        best?.Dispose();
                        best = fitted;
                    }
                    else
                    {
                        fitted.Dispose();
                    }
                }
                if (rung + 1 >= rounds.Count) break;

                var survivors = roundTrials.Where(i => trials[i].Succeeded)
                    .OrderByDescending(i => trials[i].Score(options.Metric))
                    .ThenBy(i => trials[i].TrainableParameters)
                    .ThenBy(i => i)
                    .Take(rounds[rung + 1].Count)
                    .ToList();
                foreach (int i in survivors) trials[i] = trials[i] with { Promoted = true };
                current = survivors.Select(i => trials[i].Settings).ToList();
                channel.Info(MessageSensitivity.None, $"Round {rung} done: {survivors.Count} of {roundTrials.Count} go on to {rounds[rung + 1].Epochs} epochs: " +
                    string.Join("; ", current));
            }

            if (best is null)
                throw new InvalidOperationException($"Every trial of the LoRA sweep failed; the first error: {trials.FirstOrDefault(t => t.Error is not null)?.Error}");

            var front = ParetoFront.Mark(trials, options.Metric);
            int bestNumber = best.Trial.Number;
            for (int i = 0; i < trials.Count; i++)
                trials[i] = trials[i] with { IsParetoOptimal = front[i], IsBest = trials[i].Number == bestNumber };
            var result = new LoraSweepResult(trials, options.Metric, options.Strategy, best.Model!, best.LoraTransformer!, clock.Elapsed);
            channel.Info(MessageSensitivity.None, $"LoRA sweep done in {clock.Elapsed.TotalSeconds:F0} s: best {result.BestTrial}; " +
                $"Pareto front: {string.Join("; ", result.ParetoFront.Select(t => $"#{t.Number} r={t.Settings.Rank}"))}.");
            best = null;     // the result owns it now
            return result;
        }
        finally
        {
            best?.Dispose();
            ownedEncoder?.Dispose();
        }
    }

    /// <summary>
    /// Trains and scores one point for <paramref name="epochs"/> epochs, outside a sweep: the step an AutoML trial runner
    /// calls. The caller owns the returned model. A failed fit throws (no <see cref="LoraSweepOptions.ContinueAfterFailedTrial"/> here).
    /// </summary>
    public FittedTrial RunTrial(IDataView trainData, IDataView validationData, LoraTrialSettings settings, int epochs)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        ArgumentNullException.ThrowIfNull(validationData);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1);
        var host = MLContextAccess.EnvironmentOf(ml).Register("LoraSweep");
        using var channel = host.Start("Trial");
        int seed = options.BaseOptions.Seed ?? host.Rand.Next();
        return RunTrialCore(PrepareData(trainData, validationData), settings, epochs, options.BaseOptions.Encoder, seed, 1, 1, 0, channel, rethrow: true);
    }

    private FittedTrial RunTrialCore(SweepData data, LoraTrialSettings settings, int epochs, PretrainedEncoder? encoder, int seed,
        int number, int planned, int rung, IChannel channel, bool rethrow = false)
    {
        var progress = options.Progress;
        progress?.Report(new LoraSweepProgress(number, planned, rung, settings, epochs));
        channel.Info(MessageSensitivity.None, $"Trial {number}/{planned} (round {rung}): {settings}, {epochs} epochs.");

        var trainerOptions = settings.ApplyTo(options.BaseOptions, epochs);
        trainerOptions.Encoder = encoder;
        trainerOptions.Seed = seed;
        trainerOptions.CancellationToken = options.CancellationToken;
        trainerOptions.Progress = progress is null ? null
            : new InlineProgress<LoraTrainingProgress>(p => progress.Report(new LoraSweepProgress(number, planned, rung, settings, epochs, Training: p)));

        LoraTextClassificationTransformer? lora = null;
        var clock = Stopwatch.StartNew();
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        try
        {
            lora = new LoraTextClassificationTrainer(ml, trainerOptions).Fit(data.Train);
            var trainingTime = clock.Elapsed;
            var trainingCpuTime = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;

            var scored = lora.Transform(data.Validation);
            var metrics = ml.MulticlassClassification.Evaluate(scored, labelColumnName: trainerOptions.LabelColumnName,
                scoreColumnName: trainerOptions.ScoreColumnName, predictedLabelColumnName: trainerOptions.PredictedLabelColumnName);
            var parts = new List<ITransformer>();
            if (data.KeyMapper is not null) parts.Add(data.KeyMapper);
            parts.Add(lora);
            if (data.KeyMapper is not null) parts.Add(ml.Transforms.Conversion.MapKeyToValue(trainerOptions.PredictedLabelColumnName).Fit(scored));
            var model = new TransformerChain<ITransformer>(parts.ToArray());

            var trial = new LoraSweepTrial
            {
                Number = number,
                Rung = rung,
                Settings = settings,
                Epochs = epochs,
                Accuracy = metrics.MicroAccuracy,
                MacroAccuracy = metrics.MacroAccuracy,
                MacroF1 = ClassificationScores.MacroF1(metrics.ConfusionMatrix),
                LogLoss = metrics.LogLoss,
                TrainableParameters = lora.TrainedParameterCount,
                AdapterFileBytes = options.MeasureAdapterFileSize ? AdapterFileBytes(model, data.TrainSchema) : null,
                TrainingTime = trainingTime,
                TrainingCpuTime = trainingCpuTime,
                Forgetting = options.ForgettingScorer?.Invoke(lora),
                TrainingHistory = lora.TrainingHistory,
            };
            var fitted = new FittedTrial(trial, model, lora);
            lora = null;
            channel.Info(MessageSensitivity.None, $"Trial {trial}");
            progress?.Report(new LoraSweepProgress(number, planned, rung, settings, epochs, Completed: trial));
            return fitted;
        }
        catch (InvalidOperationException e) when (!rethrow && options.ContinueAfterFailedTrial)
        {
            // A diverged loss (too high a learning rate) is a result of the sweep, not a reason to stop it.
            var trial = new LoraSweepTrial { Number = number, Rung = rung, Settings = settings, Epochs = epochs, TrainingTime = clock.Elapsed, Error = e.Message };
            channel.Warning(MessageSensitivity.None, $"Trial {trial}");
            progress?.Report(new LoraSweepProgress(number, planned, rung, settings, epochs, Completed: trial));
            return new FittedTrial(trial, null, null);
        }
        finally
        {
            lora?.Dispose();
        }
    }

    /// <summary>The size on disk of <paramref name="model"/> saved with <c>SaveWithAdapters</c>, through a temporary file.</summary>
    private long AdapterFileBytes(ITransformer model, DataViewSchema schema)
    {
        string path = Path.Combine(Path.GetTempPath(), $"mlnet-lora-sweep-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.SaveWithAdapters(model, schema, path);
            return new FileInfo(path).Length;
        }
        finally
        {
            if (File.Exists(path)) File.Delete(path);
        }
    }

    private SweepData PrepareData(IDataView train, IDataView validation)
    {
        string label = options.BaseOptions.LabelColumnName;
        var column = train.Schema.GetColumnOrNull(label)
            ?? throw new ArgumentOutOfRangeException(nameof(train), $"The label column '{label}' (LoraSweepOptions.BaseOptions.LabelColumnName) is not in the training data. " +
                $"Columns: {string.Join(", ", train.Schema.Select(c => c.Name))}.");
        if (validation.Schema.GetColumnOrNull(label) is null)
            throw new ArgumentOutOfRangeException(nameof(validation), $"The label column '{label}' (LoraSweepOptions.BaseOptions.LabelColumnName) is not in the validation data.");
        if (column.Type is KeyDataViewType) return new SweepData(train, validation, train.Schema, null);
        // One key mapping, learnt from the training data, for every trial: the same classes in the same order.
        var mapper = ml.Transforms.Conversion.MapValueToKey(label).Fit(train);
        return new SweepData(mapper.Transform(train), mapper.Transform(validation), train.Schema, mapper);
    }

    /// <summary>Ranks trials for the best model: the metric, then fewer trainable parameters, then more epochs, then the earlier trial.</summary>
    private bool IsBetter(LoraSweepTrial candidate, LoraSweepTrial incumbent)
    {
        double a = candidate.Score(options.Metric), b = incumbent.Score(options.Metric);
        if (a != b) return a > b;
        if (candidate.TrainableParameters != incumbent.TrainableParameters) return candidate.TrainableParameters < incumbent.TrainableParameters;
        return candidate.Epochs > incumbent.Epochs;
    }

    /// <summary>
    /// Successive halving's rounds: <paramref name="points"/> trials at <paramref name="minEpochs"/>, then the best
    /// <paramref name="keepFraction"/> (rounded down, at least one) at <paramref name="epochFactor"/> times the epochs
    /// (rounded up, at most <paramref name="maxEpochs"/>), until one trial is left or the epochs stop growing.
    /// </summary>
    public static IReadOnlyList<SweepRound> PlanRounds(int points, int minEpochs, int maxEpochs, double keepFraction, double epochFactor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(points, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(minEpochs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEpochs, minEpochs);
        if (!(keepFraction > 0 && keepFraction < 1)) throw new ArgumentOutOfRangeException(nameof(keepFraction), keepFraction, "The keep fraction must be in (0, 1).");
        if (!(epochFactor > 1)) throw new ArgumentOutOfRangeException(nameof(epochFactor), epochFactor, "The epoch factor must be greater than 1.");
        var rounds = new List<SweepRound>();
        int count = points, epochs = minEpochs;
        while (true)
        {
            rounds.Add(new SweepRound(count, epochs));
            if (count == 1) break;
            int next = Math.Min((int)Math.Ceiling(epochs * epochFactor - 1e-9), maxEpochs);
            if (next <= epochs) break;
            count = Math.Max(1, (int)Math.Floor(count * keepFraction + 1e-9));
            epochs = next;
        }
        return rounds;
    }

    private sealed record SweepData(IDataView Train, IDataView Validation, DataViewSchema TrainSchema, ITransformer? KeyMapper);

    /// <summary>Reports on the calling thread (unlike <c>Progress&lt;T&gt;</c>), so a sweep's reports arrive in order.</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>A round of a sweep: how many trials, each trained for how many epochs.</summary>
/// <param name="Count">Trials in the round.</param>
/// <param name="Epochs">Epochs per trial.</param>
public sealed record SweepRound(int Count, int Epochs);
