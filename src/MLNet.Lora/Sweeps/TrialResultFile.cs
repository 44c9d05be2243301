using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using MLNet.Lora.IO;
using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// One finished trial of a sharded sweep on disk: <c>trial-0007.json</c> (its scores, versioned) beside
/// <c>trial-0007.zip</c> (its model, saved with <c>SaveWithAdapters</c>). The model is written first and the JSON last,
/// each atomically, so the JSON's presence means the trial is done: a shard that is killed and retried skips it.
/// </summary>
internal static class TrialResultFile
{
    public const int CurrentVersion = 1;
    private const string Format = "mlnet-lora-sweep-trial";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // Metrics of a failed trial are NaN; JSON numbers cannot say so otherwise.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string JsonPath(string folder, int number) => Path.Combine(folder, $"trial-{number.ToString("D4", CultureInfo.InvariantCulture)}.json");

    public static string ModelPath(string folder, int number) => Path.ChangeExtension(JsonPath(folder, number), ".zip");

    public static void Write(string folder, LoraSweepTrial trial, string sweepId, string fingerprint)
    {
        var file = new ResultFile
        {
            Format = Format,
            Version = CurrentVersion,
            SweepId = sweepId,
            Fingerprint = fingerprint,
            Number = trial.Number,
            Rung = trial.Rung,
            Epochs = trial.Epochs,
            Rank = trial.Settings.Rank,
            Alpha = trial.Settings.AlphaSetting.ToString(),
            TargetModules = LoraTrialSettings.FormatModules(trial.Settings.TargetModules),
            LearningRate = trial.Settings.LearningRate,
            Accuracy = trial.Accuracy,
            MacroAccuracy = trial.MacroAccuracy,
            MacroF1 = trial.MacroF1,
            LogLoss = trial.LogLoss,
            TrainableParameters = trial.TrainableParameters,
            AdapterFileBytes = trial.AdapterFileBytes,
            TrainingSeconds = trial.TrainingTime.TotalSeconds,
            TrainingCpuSeconds = trial.TrainingCpuTime.TotalSeconds,
            Forgetting = trial.Forgetting,
            Error = trial.Error,
            History = trial.TrainingHistory.Select(h => new EpochFile(h.Epoch, h.TrainingLoss, h.ValidationAccuracy, h.ValidationLoss,
                h.Elapsed.TotalSeconds, h.TrainingTime.TotalSeconds)).ToList(),
        };
        AtomicFile.WriteAllText(JsonPath(folder, trial.Number), JsonSerializer.Serialize(file, Json));
    }

    /// <summary>Reads a result; null when there is none. A file of another sweep, or a broken one, is an error that names it.</summary>
    public static LoraSweepTrial? Read(string folder, int number, string sweepId, string fingerprint)
    {
        string path = JsonPath(folder, number);
        if (!File.Exists(path)) return null;
        ResultFile? file;
        try
        {
            file = JsonSerializer.Deserialize<ResultFile>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The trial result '{path}' is not valid JSON ({e.Message}). Delete it to run the trial again.", e);
        }
        if (file is null || file.Format != Format)
            throw new InvalidDataException($"'{path}' is not a sweep trial result (format '{file?.Format}', not '{Format}').");
        if (file.Version is < 1 or > CurrentVersion)
            throw new InvalidDataException($"The trial result '{path}' has version {file.Version}; this build reads versions 1 to {CurrentVersion}.");
        if (file.SweepId != sweepId || file.Fingerprint != fingerprint || file.Number != number)
            throw new InvalidDataException($"The trial result '{path}' belongs to another sweep or plan (sweep {file.SweepId}, plan {file.Fingerprint}; " +
                $"expected sweep {sweepId}, plan {fingerprint}). Give each sweep its own results folder.");
        return new LoraSweepTrial
        {
            Number = file.Number,
            Rung = file.Rung,
            Epochs = file.Epochs,
            Settings = new LoraTrialSettings(file.Rank, AlphaSetting.Parse(file.Alpha), LoraTrialSettings.ParseModules(file.TargetModules), file.LearningRate),
            Accuracy = file.Accuracy,
            MacroAccuracy = file.MacroAccuracy,
            MacroF1 = file.MacroF1,
            LogLoss = file.LogLoss,
            TrainableParameters = file.TrainableParameters,
            AdapterFileBytes = file.AdapterFileBytes,
            TrainingTime = TimeSpan.FromSeconds(file.TrainingSeconds),
            TrainingCpuTime = TimeSpan.FromSeconds(file.TrainingCpuSeconds),
            Forgetting = file.Forgetting,
            Error = file.Error,
            TrainingHistory = (file.History ?? []).Select(h => new EpochSummary(h.Epoch, h.TrainingLoss, h.ValidationAccuracy, h.ValidationLoss,
                TimeSpan.FromSeconds(h.ElapsedSeconds)) { TrainingTime = TimeSpan.FromSeconds(h.TrainingSeconds) }).ToList(),
        };
    }

    private sealed record ResultFile
    {
        public string Format { get; init; } = "";
        public int Version { get; init; }
        public string SweepId { get; init; } = "";
        public string Fingerprint { get; init; } = "";
        public int Number { get; init; }
        public int Rung { get; init; }
        public int Epochs { get; init; }
        public int Rank { get; init; }
        public string Alpha { get; init; } = "";
        public string TargetModules { get; init; } = "";
        public double LearningRate { get; init; }
        public double Accuracy { get; init; } = double.NaN;
        public double MacroAccuracy { get; init; } = double.NaN;
        public double MacroF1 { get; init; } = double.NaN;
        public double LogLoss { get; init; } = double.NaN;
        public long TrainableParameters { get; init; }
        public long? AdapterFileBytes { get; init; }
        public double TrainingSeconds { get; init; }
        public double TrainingCpuSeconds { get; init; }
        public double? Forgetting { get; init; }
        public string? Error { get; init; }
        public List<EpochFile>? History { get; init; }
    }

    private sealed record EpochFile(int Epoch, double TrainingLoss, double? ValidationAccuracy, double? ValidationLoss, double ElapsedSeconds, double TrainingSeconds);
}
