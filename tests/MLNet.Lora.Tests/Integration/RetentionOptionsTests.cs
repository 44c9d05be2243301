using Microsoft.ML;
using MLNet.Lora.Adapters;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Integration;

/// <summary>The trainer's options that limit forgetting: each refused with a clear message before training, and each doing its job in a fit.</summary>
public class RetentionOptionsTests(TinyEncoderFixture fixture) : IClassFixture<TinyEncoderFixture>
{
    private LoraTextClassificationTrainer.Options Options(Action<LoraTextClassificationTrainer.Options>? change = null)
    {
        TorchSharp.torch.set_num_threads(1);
        var options = new LoraTextClassificationTrainer.Options
        {
            Encoder = fixture.Encoder, Rank = 2, Alpha = 4, MaxEpochs = 2, BatchSize = 8, LearningRate = 2e-2, MaxSequenceLength = 16, Seed = 1,
        };
        change?.Invoke(options);
        return options;
    }

    private static (MLContext Ml, IDataView Train) Data()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(SyntheticData.Sentiment(48, seed: 1));
        return (ml, ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data));
    }

    private static ForgettingTask Topics(MLContext ml) => new("topics", ml.Data.LoadFromEnumerable(SyntheticData.Topics(60, seed: 3)));

    private static LoraTextClassificationTransformer Fit(LoraTextClassificationTrainer.Options options)
    {
        var (ml, train) = Data();
        return ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(train);
    }

    public static TheoryData<string, string> Refusals => new()
    {
        { "budget without retention tasks", "*Options.ForgettingBudget needs RetentionTasks*" },
        { "ewc without retention tasks", "*Options.RetentionPenalty (EWC) needs RetentionTasks*Fisher*" },
        { "ewc in head-only mode", "*Options.RetentionPenalty has nothing to hold in FineTuningMode.HeadOnly*" },
        { "negative strength", "*RetentionPenalty.Strength must be a finite number ≥ 0 (was -1)*" },
        { "infinite strength", "*RetentionPenalty.Strength must be a finite number ≥ 0 (was Infinity)*" },
        { "zero rehearsal ratio", "*Options.Rehearsal.Ratio must be a positive number*" },
        { "orthogonal in full mode", "*Options.OrthogonalTo needs Mode = Lora*" },
        { "negative orthogonality", "*Options.OrthogonalityStrength must be a finite number ≥ 0*" },
        { "budget above one", "*Options.ForgettingBudget.MaxDrop must be in ?0, 1?*" },
        { "rehearsal twice", "*Options.Rehearsal.Tasks names 'topics' twice*" },
        { "rehearsal in head-only mode", "*Options.Rehearsal has nothing to keep in FineTuningMode.HeadOnly*" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void BadSettingsAreRefusedWhenTheTrainerIsMadeNamingTheOption(string what, string message)
    {
        var ml = new MLContext(1);
        var topics = Topics(ml);
        var options = Options(o =>
        {
            switch (what)
            {
                case "budget without retention tasks": o.ForgettingBudget = new ForgettingBudget(0.05); break;
                case "ewc without retention tasks": o.RetentionPenalty = RetentionPenalty.Ewc(1); break;
                case "ewc in head-only mode": o.Mode = FineTuningMode.HeadOnly; o.RetentionTasks = [topics]; o.RetentionPenalty = RetentionPenalty.Ewc(1); break;
                case "negative strength": o.RetentionPenalty = RetentionPenalty.L2SP(-1); break;
                case "infinite strength": o.RetentionPenalty = RetentionPenalty.L2SP(double.PositiveInfinity); break;
                case "zero rehearsal ratio": o.Rehearsal = new Rehearsal([topics], 0); break;
                case "orthogonal in full mode": o.Mode = FineTuningMode.Full; o.OrthogonalTo = ["earlier.zip"]; break;
                case "negative orthogonality": o.OrthogonalityStrength = -0.5; break;
                case "budget above one": o.RetentionTasks = [topics]; o.ForgettingBudget = new ForgettingBudget(1.5); break;
                case "rehearsal twice": o.Rehearsal = new Rehearsal([topics, topics], 0.2); break;
                case "rehearsal in head-only mode": o.Mode = FineTuningMode.HeadOnly; o.Rehearsal = new Rehearsal([topics], 0.2); break;
            }
        });
        var make = () => ml.MulticlassClassification.Trainers.LoraTextClassification(options);
        make.Should().Throw<ArgumentException>().WithMessage(message);
    }

    [Fact]
    public void RehearsalDataWithoutItsLabelColumnIsRefusedBeforeTrainingNamingTheOptionAndColumn()
    {
        var ml = new MLContext(1);
        var topics = Topics(ml) with { LabelColumnName = "Topic" };
        var progress = new List<LoraTrainingProgress>();
        var options = Options(o => { o.Rehearsal = new Rehearsal([topics], 0.5); o.Progress = new InlineProgress<LoraTrainingProgress>(progress.Add); });
        var fit = () => Fit(options);
        fit.Should().Throw<ArgumentException>().WithMessage("*Options.Rehearsal*'topics'*label column 'Topic' is not in the data*");
        progress.Should().BeEmpty("nothing trained");
    }

    [Fact]
    public void RetentionTasksWithoutTheirTextColumnAreRefusedNamingTheOption()
    {
        var ml = new MLContext(1);
        var topics = Topics(ml) with { TextColumnName = "Body" };
        var fit = () => Fit(Options(o => { o.RetentionTasks = [topics]; o.ForgettingBudget = new ForgettingBudget(0.1); }));
        fit.Should().Throw<ArgumentException>().WithMessage("*Options.RetentionTasks*'topics'*text column 'Body' is not in the data*");
    }

    [Fact]
    public void AFitWithRehearsalEwcAndABudgetTrainsAndReportsTheBudgetsChecks()
    {
        var ml = new MLContext(1);
        var topics = Topics(ml);
        using var model = Fit(Options(o =>
        {
            o.MaxEpochs = 3;
            o.RetentionTasks = [topics];
            o.Rehearsal = new Rehearsal([topics], 0.25);
            o.RetentionPenalty = RetentionPenalty.Ewc(1, fisherExamples: 8);
            o.ForgettingBudget = new ForgettingBudget(1.0) { EveryNSteps = 3, MaxCheckRows = 20 };
        }));
        var outcome = model.ForgettingBudgetOutcome!;
        outcome.StoppedEarly.Should().BeFalse("a budget of 100 points is never exceeded");
        outcome.Checks.Select(c => c.Step).Should().Equal([0, 3, 6, 9, 12, 15, 18], "every third of 18 steps; the epoch ends (6, 12, 18) coincide with step checks and are not measured twice");
        outcome.KeptStep.Should().Be(18, "without validation data the latest check within budget is kept: the end");
        model.TrainingHistory.Should().HaveCount(3);
    }

    [Fact]
    public void OrthogonalToHoldsTheNewAdaptersSubspaceAwayFromTheEarlierOnes()
    {
        string dir = Directory.CreateTempSubdirectory("mlnet-lora-olora-").FullName;
        try
        {
            var (ml, train) = Data();
            using var earlier = Fit(Options(o => o.Seed = 5));
            string saved = Path.Combine(dir, "earlier.zip");
            ml.Model.SaveWithAdapters(earlier, train.Schema, saved);

            double Overlap(double strength)
            {
                using var next = Fit(Options(o => { o.OrthogonalTo = [saved]; o.OrthogonalityStrength = strength; o.MaxEpochs = 4; }));
                using var a = next.Use();
                using var b = earlier.Use();
                var olds = LoraInjector.Adapters(b.Model.Encoder).ToDictionary(f => f.Path, f => f.A);
                return LoraInjector.Adapters(a.Model.Encoder).Sum(f => olds[f.Path].matmul(f.A.t()).square().sum().item<float>());
            }
            Overlap(50).Should().BeLessThan(0.5 * Overlap(0), "the penalty λ·Σ‖A_old A_newᵀ‖² pushes the subspaces apart");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void WithValidationDataTheBudgetKeepsTheBestEpochWithinBudgetAndPatienceStillStops()
    {
        var (ml, train) = Data();
        var validation = ml.Data.TrainTestSplit(train, testFraction: 0.5, seed: 1);
        var topics = Topics(ml);
        var accuracies = new List<double?>();
        using var model = ml.MulticlassClassification.Trainers.LoraTextClassification(Options(o =>
        {
            o.MaxEpochs = 6;
            o.LearningRate = 5e-2;
            o.EarlyStoppingPatience = 1;
            o.RetentionTasks = [topics];
            o.ForgettingBudget = new ForgettingBudget(1.0) { MaxCheckRows = 20 };
            o.EpochEnded = c => accuracies.Add(c.ValidationAccuracy);
        })).Fit(validation.TrainSet, validation.TestSet);
        var outcome = model.ForgettingBudgetOutcome!;
        int best = accuracies.Select((a, i) => (a, i)).OrderByDescending(x => x.a).ThenBy(x => x.i).First().i;   // first epoch with the best accuracy
        outcome.KeptStep.Should().Be(outcome.Checks[best + 1].Step, "the kept checkpoint is the best validation epoch within budget");
        bool improvedLast = accuracies.Count < 2 || accuracies[^1] > accuracies.Take(accuracies.Count - 1).Max();
        if (accuracies.Count < 6) improvedLast.Should().BeFalse("patience stopped the fit after an epoch without improvement");
    }

    [Fact]
    public void OrthogonalToReadsAPeftFolder()
    {
        string dir = Directory.CreateTempSubdirectory("mlnet-lora-olora-").FullName;
        try
        {
            using var earlier = Fit(Options(o => o.Seed = 5));
            earlier.SavePeftAdapter(Path.Combine(dir, "earlier"));
            using var next = Fit(Options(o => o.OrthogonalTo = [Path.Combine(dir, "earlier")]));
            next.TrainingHistory.Should().HaveCount(2);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void OrthogonalToRefusesAnAdapterOfAnotherBaseOrLayout()
    {
        string dir = Directory.CreateTempSubdirectory("mlnet-lora-olora-").FullName;
        try
        {
            var (ml, train) = Data();
            using (var other = TinyEncoders.CreateInFolder(dir, seed: 11))
            using (var foreign = Fit(Options(o => o.Encoder = other)))
                ml.Model.SaveWithAdapters(foreign, train.Schema, Path.Combine(dir, "other-base.zip"));
            using (var keyToo = Fit(Options(o => o.TargetModules = LoraTargetModules.Query | LoraTargetModules.Key | LoraTargetModules.Value)))
                ml.Model.SaveWithAdapters(keyToo, train.Schema, Path.Combine(dir, "wider.zip"));

            var otherBase = () => Fit(Options(o => o.OrthogonalTo = [Path.Combine(dir, "other-base.zip")]));
            otherBase.Should().Throw<ArgumentException>().WithMessage("*Options.OrthogonalTo*other-base.zip*trained on base encoder*SHA-256*");
            var wider = () => Fit(Options(o => o.OrthogonalTo = [Path.Combine(dir, "wider.zip")]));
            wider.Should().Throw<ArgumentException>().WithMessage("*Options.OrthogonalTo*wider.zip*adapts*key*which the new adapter does not*");
            var missing = () => Fit(Options(o => o.OrthogonalTo = [Path.Combine(dir, "none.zip")]));
            missing.Should().Throw<ArgumentException>().WithMessage("*Options.OrthogonalTo*none.zip*does not exist*");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
