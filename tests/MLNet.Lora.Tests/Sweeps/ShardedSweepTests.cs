using Microsoft.ML;
using MLNet.Lora.Sweeps;
using MLNet.Lora.Tests.Cli;
using MLNet.Lora.Tests.Integration;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.Sweeps;

/// <summary>The sharded sweep through the library's API: plan, shards, promote and merge against <see cref="LoraSweep.Run"/>.</summary>
public class ShardedSweepTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>
{
    private LoraSweepOptions Options(SweepStrategy strategy) => new()
    {
        SearchSpace = new LoraSearchSpace { Ranks = [1, 2, 4, 8], LearningRates = [2e-2] },
        Strategy = strategy,
        Metric = SweepMetric.MacroF1,
        HalvingMinEpochs = 1,
        HalvingMaxEpochs = 4,
        MeasureAdapterFileSize = false,
        BaseOptions = new()
        {
            BaseModel = fixture.Encoder.Identity.Source,
            MaxEpochs = 1,
            BatchSize = 16,
            MaxSequenceLength = 16,
            Seed = 42,
        },
    };

    private static (MLContext Ml, IDataView Train, IDataView Validation) Data()
    {
        var ml = new MLContext(seed: 1);
        return (ml, ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(96, seed: 1)), ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(48, seed: 2)));
    }

    [Fact]
    public void SuccessiveHalvingRoundByRoundEqualsTheInProcessSweep()
    {
        var (ml, train, validation) = Data();
        string folder = Path.Combine(fixture.Root, $"halving-{Guid.NewGuid():N}");
        var plan = LoraSweepPlan.Create(Options(SweepStrategy.SuccessiveHalving), shards: 3);
        plan.Rounds.Select(r => (r.Count, r.Epochs)).Should().Equal((4, 1), (2, 2), (1, 4));
        plan.Trials.Select(t => t.Shard).Should().Equal(0, 1, 2, 0);

        // Every round: the plan goes through a file (as it would to pods), each shard runs, then promote.
        for (int round = 0; ; round++)
        {
            string path = Path.Combine(folder, $"plan-{round}.json");
            plan.Save(path);
            plan = LoraSweepPlan.Load(path);
            plan.Rung.Should().Be(round);
            for (int shard = 0; shard < plan.Shards; shard++)
                ShardedSweep.RunShard(ml, plan, shard, train, validation, folder).Ran.Should().HaveCount(plan.TrialsOfShard(shard).Count);
            if (round + 1 == plan.Rounds.Count) break;
            var early = () => ShardedSweep.Merge(ml, plan, Path.Combine(folder, "missing"));
            early.Should().Throw<DirectoryNotFoundException>();
            plan = ShardedSweep.Promote(plan, folder);
        }
        var last = () => ShardedSweep.Promote(plan, folder);
        last.Should().Throw<InvalidOperationException>().WithMessage("*last round*merge*");

        using var sharded = ShardedSweep.Merge(ml, plan, folder);
        using var inProcess = new LoraSweep(ml, Options(SweepStrategy.SuccessiveHalving)).Run(train, validation);
        inProcess.Trials.Select(t => t.Rung).Should().Equal(0, 0, 0, 0, 1, 1, 2);
        SweepAssertions.SameTrials(sharded, inProcess);
    }

    [Fact]
    public void MergeNamesTheMissingTrialsAndTheirShards()
    {
        var (ml, train, validation) = Data();
        string folder = Path.Combine(fixture.Root, $"partial-{Guid.NewGuid():N}");
        var plan = LoraSweepPlan.Create(Options(SweepStrategy.Grid), shards: 2);
        ShardedSweep.RunShard(ml, plan, 0, train, validation, folder).ToString().Should().StartWith("shard 0: 2 trials run, 0 already done");
        var merge = () => ShardedSweep.Merge(ml, plan, folder);
        merge.Should().Throw<InvalidOperationException>().WithMessage("2 of 4 trials * have no result * yet: #2 (shard 1), #4 (shard 1).*");
        ShardedSweep.RunShard(ml, plan, 0, train, validation, folder).Skipped.Should().HaveCount(2);

        // A results folder is one sweep's: another plan's files are refused, not mixed in.
        var other = LoraSweepPlan.Create(Options(SweepStrategy.Grid), shards: 2);
        var mixed = () => ShardedSweep.RunShard(ml, other, 0, train, validation, folder);
        mixed.Should().Throw<InvalidDataException>().WithMessage("*trial-0001.json' belongs to another sweep or plan*");
        var badShard = () => plan.TrialsOfShard(2);
        badShard.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*2 shards (0 to 1)*");
    }

    [Fact]
    public void PlansRefuseWhatOtherProcessesCannotUseAndFilesTheyCannotRead()
    {
        var options = Options(SweepStrategy.Grid);
        options.BaseOptions.Encoder = fixture.Encoder;
        var loaded = () => LoraSweepPlan.Create(options, 2);
        loaded.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Encoder is set: other processes cannot use a loaded encoder*BaseModel*");

        string folder = Directory.CreateDirectory(Path.Combine(fixture.Root, $"plans-{Guid.NewGuid():N}")).FullName;
        string path = Path.Combine(folder, "plan.json");
        var plan = LoraSweepPlan.Create(Options(SweepStrategy.Grid), 2);
        plan.Save(path);
        string json = File.ReadAllText(path);
        json.Should().Contain("\"version\": 1").And.Contain("\"MaxSequenceLength\": 16").And.Contain("\"HuggingFaceFolder\"");
        var reloaded = LoraSweepPlan.Load(path).CreateOptions();
        (reloaded.BaseOptions.MaxSequenceLength, reloaded.BaseOptions.Seed, reloaded.BaseOptions.BaseModel, reloaded.Metric)
            .Should().Be((16, 42, fixture.Encoder.Identity.Source, SweepMetric.MacroF1));

        File.WriteAllText(path, json.Replace("\"version\": 1", "\"version\": 9"));
        var newer = () => LoraSweepPlan.Load(path);
        newer.Should().Throw<InvalidDataException>().WithMessage($"The sweep plan '{path}' has version 9; this build reads versions 1 to 1*");
        File.WriteAllText(path, json.Replace("\"MaxSequenceLength\"", "\"MaxSequenceLenght\""));
        var typo = () => LoraSweepPlan.Load(path);
        typo.Should().Throw<InvalidDataException>().WithMessage("*'trainer.MaxSequenceLenght' is not a trainer option*");
        File.WriteAllText(path, "{ not json");
        var broken = () => LoraSweepPlan.Load(path);
        broken.Should().Throw<InvalidDataException>().WithMessage($"The sweep plan '{path}' is not valid JSON*");
    }

    [Fact]
    public void OnlyADivergedTrialIsRecordedOtherErrorsStopTheSweep()
    {
        var (ml, train, validation) = Data();
        var options = Options(SweepStrategy.Grid);
        options.SearchSpace = new LoraSearchSpace { Ranks = [2], LearningRates = [2e-2, 1e30] };
        options.BaseOptions.MaxGradientNorm = 0;
        string folder = Path.Combine(fixture.Root, $"diverged-{Guid.NewGuid():N}");
        var plan = LoraSweepPlan.Create(options, 1);
        var summary = ShardedSweep.RunShard(ml, plan, 0, train, validation, folder);
        summary.Ran.Select(t => t.Succeeded).Should().Equal(true, false);
        summary.Ran[1].Error.Should().Contain("Training diverged");
        using var merged = ShardedSweep.Merge(ml, plan, folder);
        merged.Trials[1].Succeeded.Should().BeFalse("the failed trial survives the result file");
        double.IsNaN(merged.Trials[1].Accuracy).Should().BeTrue();

        // Not every InvalidOperationException is a divergence: a base that cannot be loaded stops the sweep.
        var missingBase = Options(SweepStrategy.Grid);
        missingBase.BaseOptions.BaseModel = MLNet.Lora.Checkpoints.EncoderSource.HuggingFaceFolder(Path.Combine(fixture.Root, "no-such-model"));
        var act = () => new LoraSweep(ml, missingBase).Run(train, validation);
        act.Should().Throw<Exception>().Which.Should().NotBeOfType<TrainingDivergedException>();
        typeof(TrainingDivergedException).IsSubclassOf(typeof(InvalidOperationException)).Should().BeTrue("callers that caught InvalidOperationException still do");
    }
}
