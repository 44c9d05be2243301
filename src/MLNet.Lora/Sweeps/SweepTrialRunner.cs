using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// Trains and scores one point of a sweep: the one trial-running path shared by the in-process <see cref="LoraSweep"/>
/// and the sharded sweep's <see cref="ShardedSweep.RunShard"/>, so that a trial gives the same result either way.
/// </summary>
internal sealed class SweepTrialRunner : IDisposable
{
    private readonly MLContext ml;
    private readonly LoraSweepOptions options;
    private readonly SweepData data;
    private readonly PretrainedEncoder? encoder;
    private readonly PretrainedEncoder? ownedEncoder;
    private readonly int seed;

    private SweepTrialRunner(MLContext ml, LoraSweepOptions options, SweepData data, PretrainedEncoder? encoder, PretrainedEncoder? owned, int seed)
    {
        this.ml = ml;
        this.options = options;
        this.data = data;
        this.encoder = encoder;
        ownedEncoder = owned;
        this.seed = seed;
    }

    /// <summary>The seed every trial trains with.</summary>
    public int Seed => seed;

    /// <summary>
    /// Prepares the data (one label key mapping for every trial) and, when <paramref name="loadBaseOnce"/>, loads the base
    /// encoder once so that each trial copies its weights instead of reading the model again.
    /// </summary>
    public static SweepTrialRunner Create(MLContext ml, LoraSweepOptions options, IDataView train, IDataView validation, int seed,
        IChannel channel, bool loadBaseOnce = true)
    {
        var data = PrepareData(ml, options, train, validation);
        var encoder = options.BaseOptions.Encoder;
        PretrainedEncoder? owned = null;
        if (encoder is null && loadBaseOnce)
        {
            channel.Info(MessageSensitivity.None, $"Loading the base encoder from {options.BaseOptions.BaseModel} once for all trials.");
            var cache = options.BaseOptions.CacheDirectory is null ? null : new CheckpointCache(options.BaseOptions.CacheDirectory);
            encoder = owned = PretrainedEncoder.Load(options.BaseOptions.BaseModel, cache);
        }
        return new SweepTrialRunner(ml, options, data, encoder, owned, seed);
    }

    /// <summary>The schema of the training data as given (before the sweep's label mapping): what a saved trial model reads.</summary>
    public DataViewSchema TrainSchema => data.TrainSchema;

    /// <summary>
    /// Trains <paramref name="settings"/> for <paramref name="epochs"/> epochs and scores it. A diverged fit
    /// (<see cref="TrainingDivergedException"/>) becomes a failed trial when the options continue after failed trials and
    /// <paramref name="rethrow"/> is false; every other error propagates.
    /// </summary>
    public FittedTrial Run(LoraTrialSettings settings, int epochs, int number, int planned, int rung, IChannel channel, bool rethrow = false)
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
                AdapterFileBytes = options.MeasureAdapterFileSize ? AdapterFileBytes(model) : null,
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
        catch (TrainingDivergedException e) when (!rethrow && options.ContinueAfterFailedTrial)
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

    /// <summary>Saves a trial's model with <c>SaveWithAdapters</c> (atomically) for the data the sweep was given.</summary>
    public void Save(ITransformer model, string path) => ml.Model.SaveWithAdapters(model, data.TrainSchema, path);

    /// <summary>The size on disk of <paramref name="model"/> saved with <c>SaveWithAdapters</c>, through a temporary file.</summary>
    private long AdapterFileBytes(ITransformer model)
    {
        string path = Path.Combine(Path.GetTempPath(), $"mlnet-lora-sweep-{Guid.NewGuid():N}.zip");
        try
        {
            Save(model, path);
            return new FileInfo(path).Length;
        }
        finally
        {
            if (File.Exists(path)) File.Delete(path);
        }
    }

    private static SweepData PrepareData(MLContext ml, LoraSweepOptions options, IDataView train, IDataView validation)
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

    /// <summary>Disposes the base encoder loaded for the trials.</summary>
    public void Dispose() => ownedEncoder?.Dispose();

    private sealed record SweepData(IDataView Train, IDataView Validation, DataViewSchema TrainSchema, ITransformer? KeyMapper);

}
