using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Integration;
using MLNet.Lora.Native;

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
        var rounds = options.Rounds(points.Count);
        int planned = rounds.Sum(r => r.Count);
        // Every trial uses one seed, so that trials differ by their settings alone (same data order and head initialisation).
        int seed = options.BaseOptions.Seed ?? host.Rand.Next();
        channel.Info(MessageSensitivity.None, $"LoRA sweep ({options.Strategy}, by {options.Metric}): {options.SearchSpace}; " +
            $"rounds {string.Join(", ", rounds.Select(r => $"{r.Count}×{r.Epochs} epochs"))}; {planned} trials; {TorchRuntime.Threads}.");

        FittedTrial? best = null;
        var trials = new List<LoraSweepTrial>();
        using var runner = SweepTrialRunner.Create(ml, options, trainData, validationData, seed, channel);
        try
        {
            var current = points;
            for (int rung = 0; rung < rounds.Count && current.Count > 0; rung++)
            {
                var roundTrials = new List<LoraSweepTrial>();
                foreach (var settings in current)
                {
                    token.ThrowIfCancellationRequested();
                    var fitted = runner.Run(settings, rounds[rung].Epochs, trials.Count + 1, planned, rung, channel);
                    trials.Add(fitted.Trial);
                    roundTrials.Add(fitted.Trial);
                    if (fitted.Trial.Succeeded && (best is null || SweepRanking.IsBetter(fitted.Trial, best.Trial, options.Metric)))
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

                var survivors = SweepRanking.Survivors(roundTrials, rounds[rung + 1].Count, options.Metric);
                var promoted = survivors.Select(t => t.Number).ToHashSet();
                for (int i = 0; i < trials.Count; i++)
                    if (promoted.Contains(trials[i].Number)) trials[i] = trials[i] with { Promoted = true };
                current = survivors.Select(t => t.Settings).ToList();
                channel.Info(MessageSensitivity.None, $"Round {rung} done: {survivors.Count} of {roundTrials.Count} go on to {rounds[rung + 1].Epochs} epochs: " +
                    string.Join("; ", current));
            }

            if (best is null)
                throw new InvalidOperationException($"Every trial of the LoRA sweep failed; the first error: {trials.FirstOrDefault(t => t.Error is not null)?.Error}");

            var result = new LoraSweepResult(SweepRanking.Mark(trials, options.Metric, best.Trial.Number), options.Metric, options.Strategy,
                best.Model!, best.LoraTransformer!, clock.Elapsed);
            channel.Info(MessageSensitivity.None, $"LoRA sweep done in {clock.Elapsed.TotalSeconds:F0} s: best {result.BestTrial}; " +
                $"Pareto front: {string.Join("; ", result.ParetoFront.Select(t => $"#{t.Number} r={t.Settings.Rank}"))}.");
            best = null;     // the result owns it now
            return result;
        }
        finally
        {
            best?.Dispose();
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
        using var runner = SweepTrialRunner.Create(ml, options, trainData, validationData, seed, channel, loadBaseOnce: false);
        return runner.Run(settings, epochs, 1, 1, 0, channel, rethrow: true);
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

}

/// <summary>A round of a sweep: how many trials, each trained for how many epochs.</summary>
/// <param name="Count">Trials in the round.</param>
/// <param name="Epochs">Epochs per trial.</param>
public sealed record SweepRound(int Count, int Epochs);
