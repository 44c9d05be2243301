using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Adapters;
using MLNet.Lora.Sweeps;
using MLNet.Lora.Tests.Integration;

namespace MLNet.Lora.Tests.Sweeps;

public class LoraSweepTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>
{
    private LoraSweepOptions Options(LoraSearchSpace space, SweepStrategy strategy = SweepStrategy.Grid) => new()
    {
        SearchSpace = space,
        Strategy = strategy,
        BaseOptions = new()
        {
            Encoder = fixture.Encoder,
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
    public void GridVisitsEveryPointOnceAndKeepsAWorkingBestModel()
    {
        var (ml, train, validation) = Data();
        var space = new LoraSearchSpace
        {
            Ranks = [1, 2, 4],
            TargetModuleSets = [LoraTargetModules.Query | LoraTargetModules.Value, LoraTargetModules.All],
            LearningRates = [2e-2],
        };
        var reports = new List<LoraSweepProgress>();
        var options = Options(space);
        options.Epochs = 2;
        options.Progress = new InlineProgress<LoraSweepProgress>(reports.Add);
        using var result = new LoraSweep(ml, options).Run(train, validation);

        result.Trials.Select(t => t.Settings).Should().BeEquivalentTo(space.Points(), o => o.WithStrictOrdering());
        result.Trials.Should().OnlyContain(t => t.Succeeded && t.Epochs == 2 && t.Rung == 0 && t.TrainingHistory.Count == 2);
        result.Trials.Should().OnlyContain(t => t.Accuracy >= 0 && t.Accuracy <= 1 && t.MacroF1 >= 0 && t.MacroF1 <= 1);
        result.Trials.Should().OnlyContain(t => t.AdapterFileBytes > 0 && t.TrainingTime > TimeSpan.Zero && t.TrainingCpuTime > TimeSpan.Zero && t.Forgetting == null);
        // More rank, more modules: more trainable parameters.
        var qv = result.Trials.Where(t => t.Settings.TargetModules != LoraTargetModules.All).ToList();
        qv.Select(t => t.TrainableParameters).Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        qv[0].TrainableParameters.Should().Be(2 * 2 * (1 * 32 + 32 * 1) + (32 * 2 + 2), "rank 1 on query and value of 2 layers, plus the head");

        result.Trials.Count(t => t.IsBest).Should().Be(1);
        result.BestTrial.Accuracy.Should().Be(result.Trials.Max(t => t.Accuracy));
        result.ParetoFront.Should().Contain(result.BestTrial).And.Equal(ParetoFront.Of(result.Trials));
        reports.Count(r => r.Completed is not null).Should().Be(6);
        reports.Count(r => r.Training is { IsEpochEnd: true }).Should().Be(12);
        reports.Select(r => r.TrialNumber).Should().BeInAscendingOrder();

        // The best model predicts the original label values, and saves and loads like any LoRA model.
        var engine = ml.Model.CreatePredictionEngine<TextRow, TextPrediction>(result.BestModel);
        engine.Predict(new TextRow { Text = "the film was really great" }).PredictedLabel.Should().BeOneOf("positive", "negative");
        string path = Path.Combine(fixture.Root, $"{Guid.NewGuid():N}-best.zip");
        ml.Model.SaveWithAdapters(result.BestModel, train.Schema, path);
        // ML.NET deflates its time-stamped model entries, so two saves of one model can differ by a few bytes.
        new FileInfo(path).Length.Should().BeCloseTo(result.BestTrial.AdapterFileBytes!.Value, 64);
        var expected = result.BestModel.Transform(validation).GetColumn<float[]>("Score").ToArray();
        var actual = ml.Model.LoadWithAdapters(path, out _).Transform(validation).GetColumn<float[]>("Score").ToArray();
        actual.Zip(expected).Should().OnlyContain(p => p.First.Zip(p.Second).All(v => Math.Abs(v.First - v.Second) < 1e-5));
    }

    [Fact]
    public void SuccessiveHalvingKeepsTheBestFractionAndTrainsThemLonger()
    {
        var (ml, train, validation) = Data();
        var space = new LoraSearchSpace { Ranks = [1, 2, 4, 8], LearningRates = [2e-2] };
        var options = Options(space, SweepStrategy.SuccessiveHalving);
        options.HalvingMinEpochs = 1;
        options.HalvingMaxEpochs = 4;
        options.HalvingKeepFraction = 0.5;
        options.HalvingEpochFactor = 2;
        options.Metric = SweepMetric.MacroF1;
        options.MeasureAdapterFileSize = false;
        using var result = new LoraSweep(ml, options).Run(train, validation);

        var rounds = result.Trials.GroupBy(t => t.Rung).OrderBy(g => g.Key).Select(g => g.ToList()).ToList();
        rounds.Select(r => r.Count).Should().Equal(4, 2, 1);
        rounds.Select(r => r.Select(t => t.Epochs).Distinct().Single()).Should().Equal(1, 2, 4);
        rounds.SelectMany(r => r).Should().OnlyContain(t => t.TrainingHistory.Count == t.Epochs && t.AdapterFileBytes == null);
        for (int r = 0; r + 1 < rounds.Count; r++)
        {
            // The survivors are exactly the round's best half by the metric (ties: fewer parameters), and only they are promoted.
            var expected = rounds[r].OrderByDescending(t => t.MacroF1).ThenBy(t => t.TrainableParameters).Take(rounds[r + 1].Count).Select(t => t.Settings);
            rounds[r + 1].Select(t => t.Settings).Should().BeEquivalentTo(expected, o => o.WithStrictOrdering());
            rounds[r].Where(t => t.Promoted).Select(t => t.Settings).Should().BeEquivalentTo(expected);
        }
        result.BestTrial.MacroF1.Should().Be(result.Trials.Max(t => t.MacroF1));
    }

    [Fact]
    public void CancellingStopsTheSweep()
    {
        var (ml, train, validation) = Data();
        using var cancellation = new CancellationTokenSource();
        var completed = new List<LoraSweepTrial>();
        var options = Options(LoraSearchSpace.OverRanks(1, 2, 4, 8));
        options.CancellationToken = cancellation.Token;
        options.Progress = new InlineProgress<LoraSweepProgress>(p =>
        {
            if (p.Completed is { } trial) { completed.Add(trial); cancellation.Cancel(); }
        });
        var act = () => new LoraSweep(ml, options).Run(train, validation);
        act.Should().Throw<OperationCanceledException>();
        completed.Should().ContainSingle("the sweep stops before the second trial");

        // Cancelled during training: the trainer stops at its next step.
        using var during = new CancellationTokenSource();
        options.CancellationToken = during.Token;
        options.Progress = new InlineProgress<LoraSweepProgress>(p => { if (p.Training is not null) during.Cancel(); });
        act.Should().Throw<OperationCanceledException>();

        using var before = new CancellationTokenSource();
        before.Cancel();
        options.CancellationToken = before.Token;
        options.Progress = null;
        act.Should().Throw<OperationCanceledException>();
    }

    [Fact]
    public void ADivergedTrialIsRecordedAndTheSweepGoesOn()
    {
        var (ml, train, validation) = Data();
        var options = Options(new LoraSearchSpace { Ranks = [2], LearningRates = [2e-2, 1e30] });
        options.BaseOptions.MaxGradientNorm = 0;
        using var result = new LoraSweep(ml, options).Run(train, validation);
        result.Trials.Should().HaveCount(2);
        result.Trials[0].Succeeded.Should().BeTrue();
        result.Trials[1].Error.Should().Contain("diverged");
        result.Trials[1].IsParetoOptimal.Should().BeFalse();
        result.BestTrial.Number.Should().Be(1);

        options.ContinueAfterFailedTrial = false;
        var act = () => new LoraSweep(ml, options).Run(train, validation);
        act.Should().Throw<InvalidOperationException>().WithMessage("*diverged*");
    }

    [Fact]
    public void AForgettingScorerJoinsTheResults()
    {
        var (ml, train, validation) = Data();
        var reference = ml.Data.LoadFromEnumerable(SyntheticData.Topics(120, seed: 3));
        using var probe = ProbeRetentionScorer.Fit(ml, fixture.Encoder, reference, maxRows: 120, maxSequenceLength: 16);
        probe.BaseAccuracy.Should().BeGreaterThan(0.5, "three topics by vocabulary are easy for a probe on random features");
        probe.TestRows.Should().Be(60);

        var options = Options(LoraSearchSpace.OverRanks(1, 4));
        options.ForgettingScorer = probe.Score;
        using var result = new LoraSweep(ml, options).Run(train, validation);
        result.Trials.Should().OnlyContain(t => t.Forgetting != null && double.IsFinite(t.Forgetting.Value));
        result.BestTrial.Forgetting.Should().BeApproximately(probe.BaseAccuracy - probe.AccuracyWith(result.BestLoraTransformer), 1e-9);
    }

    [Fact]
    public void RunTrialReproducesASweepTrial()
    {
        // The single step an AutoML trial runner would call: same settings and seed, same model.
        var (ml, train, validation) = Data();
        var options = Options(LoraSearchSpace.OverRanks(2, 4));
        using var result = new LoraSweep(ml, options).Run(train, validation);
        var trial = result.Trials[1];
        using var fitted = new LoraSweep(ml, options).RunTrial(train, validation, trial.Settings, trial.Epochs);
        (fitted.Trial.Accuracy, fitted.Trial.MacroF1, fitted.Trial.TrainableParameters).Should().Be((trial.Accuracy, trial.MacroF1, trial.TrainableParameters));
        fitted.Model.Should().NotBeNull();
    }

    [Fact]
    public void ReportsWriteCsvAndChart()
    {
        LoraSweepTrial[] trials =
        [
            ParetoFrontTests.Trial(1, 0.8, 1_000) with { AdapterFileBytes = 4096, IsParetoOptimal = true },
            ParetoFrontTests.Trial(2, 0.9, 2_000) with { IsParetoOptimal = true, IsBest = true, Forgetting = 0.01 },
            ParetoFrontTests.Trial(3, double.NaN, 0, error: "Training diverged, \"badly\"\nat step 2"),
        ];
        string csv = Path.Combine(fixture.Root, $"{Guid.NewGuid():N}-sweep.csv");
        SweepReports.SaveCsv(trials, csv);
        var lines = File.ReadAllText(csv).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        lines[0].Should().Be("trial,rung,rank,alpha,alpha_setting,target_modules,learning_rate,epochs,accuracy,macro_accuracy,macro_f1,log_loss," +
                             "trainable_parameters,adapter_file_bytes,training_seconds,training_cpu_seconds,forgetting,pareto_optimal,promoted,best,error");
        lines[1].Should().Be("1,0,1,2,2r,Query|Value,0.001,1,0.8,,0.79,,1000,4096,0,0,,true,false,false,");
        lines[2].Split(',')[16].Should().Be("0.01");
        File.ReadAllText(csv).Should().Contain("\"Training diverged, \"\"badly\"\"\nat step 2\"");
        Directory.GetFiles(fixture.Root, "*.tmp").Should().BeEmpty("the file is written atomically");

        string png = Path.Combine(fixture.Root, $"{Guid.NewGuid():N}-sweep.png");
        SweepCharts.Save(trials, png);
        File.ReadAllBytes(png).Take(8).Should().Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A });
    }

}
