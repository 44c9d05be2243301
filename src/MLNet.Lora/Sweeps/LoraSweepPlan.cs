using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using MLNet.Lora.IO;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// A sweep split into shards that separate processes run (one Kubernetes Indexed Job pod, Slurm array task or cloud
/// job per shard): the search space, strategy, trainer options, data files and seed, and the trials of the current
/// round, each assigned to a shard. Saved as versioned JSON. <see cref="ShardedSweep.RunShard"/> runs one shard's
/// trials, <see cref="ShardedSweep.Merge"/> gathers the results into the <see cref="LoraSweepResult"/> an in-process
/// <see cref="LoraSweep"/> returns, and <see cref="ShardedSweep.Promote"/> writes successive halving's next round.
/// </summary>
public sealed class LoraSweepPlan
{
    /// <summary>The version this build writes; it reads every version up to this one.</summary>
    public const int CurrentVersion = 1;

    private const string Format = "mlnet-lora-sweep-plan";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly PlanFile file;

    private LoraSweepPlan(PlanFile file) => this.file = file;

    /// <summary>Identifies the sweep across its rounds: result files of another sweep are refused.</summary>
    public string SweepId => file.SweepId;

    /// <summary>The round this plan trains (0 first; always 0 in a grid).</summary>
    public int Rung => file.Rung;

    /// <summary>Number of shards (processes) the round's trials are dealt to.</summary>
    public int Shards => file.Shards;

    /// <summary>The seed every trial trains with (drawn when the plan was created, if the options had none).</summary>
    public int Seed => file.Seed;

    /// <summary>Every round of the sweep: one for a grid, successive halving's schedule otherwise.</summary>
    public IReadOnlyList<SweepRound> Rounds => file.Rounds;

    /// <summary>Trials the whole sweep plans, every round counted.</summary>
    public int PlannedTrials => file.Rounds.Sum(r => r.Count);

    /// <summary>The data files, when the plan records them.</summary>
    public LoraSweepDataFiles? Data => file.Data;

    /// <summary>This round's trials.</summary>
    public IReadOnlyList<PlannedTrial> Trials => file.Trials.Select(t => t.ToTrial()).ToList();

    /// <summary>The trials shard <paramref name="shard"/> runs.</summary>
    public IReadOnlyList<PlannedTrial> TrialsOfShard(int shard)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(shard);
        if (shard >= Shards)
            throw new ArgumentOutOfRangeException(nameof(shard), shard, $"The plan has {Shards} shards (0 to {Shards - 1}); shard {shard} does not exist.");
        return Trials.Where(t => t.Shard == shard).ToList();
    }

    /// <summary>
    /// The sweep's options as the plan holds them (a fresh copy each call): search space, strategy, metric, trainer options
    /// with the plan's seed. Progress, cancellation and a forgetting scorer are the caller's to add.
    /// </summary>
    public LoraSweepOptions CreateOptions()
    {
        var baseOptions = TrainerOptionsJson.Read(file.Trainer, "the sweep plan");
        baseOptions.Seed = file.Seed;
        var sweep = file.Sweep;
        return new LoraSweepOptions
        {
            SearchSpace = new LoraSearchSpace
            {
                Ranks = file.SearchSpace.Ranks,
                Alphas = file.SearchSpace.Alphas.Select(AlphaSetting.Parse).ToList(),
                TargetModuleSets = file.SearchSpace.TargetModules.Select(LoraTrialSettings.ParseModules).ToList(),
                LearningRates = file.SearchSpace.LearningRates,
            },
            BaseOptions = baseOptions,
            Strategy = file.Strategy,
            Metric = file.Metric,
            Epochs = sweep.Epochs,
            HalvingMinEpochs = sweep.HalvingMinEpochs,
            HalvingMaxEpochs = sweep.HalvingMaxEpochs,
            HalvingKeepFraction = sweep.HalvingKeepFraction,
            HalvingEpochFactor = sweep.HalvingEpochFactor,
            MeasureAdapterFileSize = sweep.MeasureAdapterFileSize,
            ContinueAfterFailedTrial = sweep.ContinueAfterFailedTrial,
        }.Validate();
    }

    /// <summary>
    /// Plans round 0 of a sweep over <paramref name="shards"/> processes. The trials are numbered and ordered as
    /// <see cref="LoraSweep.Run"/> trains them, and dealt to the shards in turn (trial i to shard i mod shards), so that
    /// small and large ranks spread evenly.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A bad option (named), or the options hold a loaded encoder, which another process cannot use.</exception>
    public static LoraSweepPlan Create(LoraSweepOptions options, int shards, LoraSweepDataFiles? data = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        options.Validate();
        if (options.BaseOptions.Encoder is not null)
            throw new ArgumentOutOfRangeException(nameof(options), $"{nameof(LoraSweepOptions)}.{nameof(options.BaseOptions)}.Encoder is set: other processes cannot use a loaded encoder. " +
                "Set BaseOptions.BaseModel to where it is stored (a Hugging Face folder, an ONNX file, or the embedded default) instead.");
        if (options.ForgettingScorer is not null)
            throw new ArgumentOutOfRangeException(nameof(options), $"{nameof(LoraSweepOptions)}.{nameof(options.ForgettingScorer)} is a function, which a plan cannot carry to other processes; " +
                "score forgetting after the merge (ForgettingEvaluator) instead.");
        var points = options.SearchSpace.Points().ToList();
        var rounds = options.Rounds(points.Count).ToList();
        int seed = options.BaseOptions.Seed ?? Random.Shared.Next();
        var trials = points.Select((p, i) => PlannedTrialFile.From(new PlannedTrial(i + 1, 0, rounds[0].Epochs, i % shards, p))).ToList();
        var space = options.SearchSpace;
        var file = new PlanFile
        {
            Format = Format,
            Version = CurrentVersion,
            SweepId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)),
            Rung = 0,
            Shards = shards,
            Seed = seed,
            Strategy = options.Strategy,
            Metric = options.Metric,
            Rounds = rounds,
            SearchSpace = new SearchSpaceFile(space.Ranks.ToList(), space.Alphas.Select(a => a.ToString()).ToList(),
                space.TargetModuleSets.Select(LoraTrialSettings.FormatModules).ToList(), space.LearningRates.ToList()),
            Sweep = new SweepSettingsFile(options.Epochs, options.HalvingMinEpochs, options.HalvingMaxEpochs, options.HalvingKeepFraction,
                options.HalvingEpochFactor, options.MeasureAdapterFileSize, options.ContinueAfterFailedTrial),
            Trainer = TrainerOptionsJson.Write(options.BaseOptions),
            Data = data,
            Trials = trials,
        };
        return new LoraSweepPlan(file);
    }

    /// <summary>The next round's plan: the same sweep, with the <paramref name="survivors"/> (numbered on from <paramref name="firstNumber"/>).</summary>
    internal LoraSweepPlan NextRound(IReadOnlyList<LoraTrialSettings> survivors, int firstNumber)
    {
        int rung = Rung + 1;
        var trials = survivors.Select((s, i) => PlannedTrialFile.From(new PlannedTrial(firstNumber + i, rung, Rounds[rung].Epochs, i % Shards, s))).ToList();
        return new LoraSweepPlan(file with { Rung = rung, Trials = trials });
    }

    /// <summary>A hash of what decides the trials' results, checked against every result file (so results of an edited plan are not mixed in).</summary>
    internal string Fingerprint => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        JsonSerializer.Serialize(file with { Trials = [], Rung = 0, Shards = 0, Data = null }, Json))))[..16];

    /// <summary>Writes the plan as JSON, atomically.</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(file, Json));
    }

    /// <summary>Reads a plan written by <see cref="Save"/> (any version up to <see cref="CurrentVersion"/>).</summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file is not a sweep plan, or a newer version; the message names the file.</exception>
    public static LoraSweepPlan Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"The sweep plan '{path}' does not exist; write one with `mlnet-lora sweep plan` or LoraSweepPlan.Save.", path);
        PlanFile? file;
        try
        {
            file = JsonSerializer.Deserialize<PlanFile>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The sweep plan '{path}' is not valid JSON: {e.Message}", e);
        }
        if (file is null || file.Format != Format)
            throw new InvalidDataException($"'{path}' is not a sweep plan (its \"format\" is '{file?.Format}', not '{Format}').");
        if (file.Version is < 1 or > CurrentVersion)
            throw new InvalidDataException($"The sweep plan '{path}' has version {file.Version}; this build reads versions 1 to {CurrentVersion}. Update MLNet.Lora.");
        if (file.Trials is null || file.Rounds is null || file.SearchSpace is null || file.Sweep is null || file.Trainer is null || file.Shards < 1
            || file.Rung < 0 || file.Rung >= file.Rounds.Count || string.IsNullOrEmpty(file.SweepId))
            throw new InvalidDataException($"The sweep plan '{path}' is incomplete (it needs sweep_id, rung, shards, rounds, search_space, sweep, trainer and trials).");
        var plan = new LoraSweepPlan(file);
        try
        {
            plan.CreateOptions();
            _ = plan.Trials;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidDataException)
        {
            throw new InvalidDataException($"The sweep plan '{path}' holds a bad setting: {e.Message}", e);
        }
        return plan;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"sweep {SweepId} round {Rung + 1} of {Rounds.Count}: {file.Trials.Count} trials on {Shards} shards ({file.Strategy}, by {file.Metric}, seed {Seed})";

    private sealed record PlanFile
    {
        public string Format { get; init; } = "";
        public int Version { get; init; }
        public string SweepId { get; init; } = "";
        public int Rung { get; init; }
        public int Shards { get; init; }
        public int Seed { get; init; }
        public SweepStrategy Strategy { get; init; }
        public SweepMetric Metric { get; init; }
        public List<SweepRound> Rounds { get; init; } = null!;
        public SearchSpaceFile SearchSpace { get; init; } = null!;
        public SweepSettingsFile Sweep { get; init; } = null!;
        public JsonObject Trainer { get; init; } = null!;
        public LoraSweepDataFiles? Data { get; init; }
        public List<PlannedTrialFile> Trials { get; init; } = null!;
    }

    private sealed record SearchSpaceFile(List<int> Ranks, List<string> Alphas, List<string> TargetModules, List<double> LearningRates);

    private sealed record SweepSettingsFile(int? Epochs, int HalvingMinEpochs, int? HalvingMaxEpochs, double HalvingKeepFraction,
        double HalvingEpochFactor, bool MeasureAdapterFileSize, bool ContinueAfterFailedTrial);

    private sealed record PlannedTrialFile(int Number, int Rung, int Epochs, int Shard, int Rank, string Alpha, string TargetModules, double LearningRate)
    {
        public static PlannedTrialFile From(PlannedTrial t) => new(t.Number, t.Rung, t.Epochs, t.Shard, t.Settings.Rank,
            t.Settings.AlphaSetting.ToString(), LoraTrialSettings.FormatModules(t.Settings.TargetModules), t.Settings.LearningRate);

        public PlannedTrial ToTrial() => new(Number, Rung, Epochs, Shard,
            new LoraTrialSettings(Rank, AlphaSetting.Parse(Alpha), LoraTrialSettings.ParseModules(TargetModules), LearningRate));
    }
}
