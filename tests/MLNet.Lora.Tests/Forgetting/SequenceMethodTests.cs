using Microsoft.ML;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.Forgetting;

public class SequenceMethodTests
{
    /// <summary>The fast options with the accuracy matrix alone (no per-task conflict or sharpness), so methods share their first task.</summary>
    private static ForgettingEvaluator.Options MatrixOnly(int epochs)
    {
        var options = ForgettingTestData.FastOptions();
        options.Epochs = epochs;
        options.MeasureGradientConflict = false;
        options.MeasureSharpness = false;
        return options;
    }

    [Fact]
    public void RehearsalForgetsLessThanTrainingWithoutIt()
    {
        // Sentiment then subject, on the same template: the second task wants other information from the same words,
        // so full fine-tuning on it at a high rate overwrites what the first task's head reads.
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var options = MatrixOnly(4);
        var report = new ForgettingEvaluator(ml, options).RunSequences(ComparedModel.FromEncoder(encoder),
            [ForgettingTestData.Sentiment(ml), ForgettingTestData.Subject(ml)],
            [SequenceStrategy.FullFineTuning, new SequenceMethod("full + rehearsal", SequenceStrategy.FullFineTuning) { RehearsalRatio = 0.5 }]);
        var plain = report.Sequences[0];
        var replayed = report.Sequences[1];
        plain.Method.Should().Be("full fine-tuning");
        replayed.Method.Should().Be("full + rehearsal");
        plain.AverageForgetting.Should().BeGreaterThan(0.05, "the constructed pair forgets without replay");
        replayed.AverageForgetting.Should().BeLessThan(plain.AverageForgetting - 0.05);
    }

    [Fact]
    public void EveryMethodRecordsEachTestRowAndItsAccuracyIsTheShareOfCorrectRows()
    {
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var options = MatrixOnly(1);
        var methods = new SequenceMethod[]
        {
            SequenceStrategy.OrthogonalAdapters,
            SequenceStrategy.MergedAdapters,
            new("O-LoRA + EWC", SequenceStrategy.OrthogonalAdapters) { RetentionPenalty = RetentionPenalty.Ewc(1, fisherExamples: 16) },
            new("shared + EWC", SequenceStrategy.SharedAdapter) { RetentionPenalty = RetentionPenalty.Ewc(1, fisherExamples: 16) },
            new("full + L2-SP", SequenceStrategy.FullFineTuning) { RetentionPenalty = RetentionPenalty.L2SP(1) },
            new("shared + budget", SequenceStrategy.SharedAdapter) { ForgettingBudget = new ForgettingBudget(0.5) { EveryNSteps = 4, MaxCheckRows = 40 } },
        };
        var report = new ForgettingEvaluator(ml, options).RunSequences(ComparedModel.FromEncoder(encoder),
            [ForgettingTestData.Sentiment(ml), ForgettingTestData.Subject(ml), ForgettingTestData.Topics(ml, withTest: true)], methods);

        report.Sequences.Select(s => s.Method).Should().Equal("O-LoRA", "merged adapters (TIES)", "O-LoRA + EWC", "shared + EWC", "full + L2-SP", "shared + budget");
        foreach (var run in report.Sequences)
        {
            run.Seed.Should().Be(options.Seed);
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                {
                    var rows = run.RowCorrect![i][j];
                    rows.Should().HaveCount(80);
                    run.Accuracy[i][j].Should().Be(rows.Count(c => c) / 80.0);
                }
            run.BaselineRowCorrect!.Select((rows, j) => rows.Count(c => c) / (double)rows.Length).Should().Equal(run.Baseline);
            run.TrainingSeconds.Should().BeGreaterThan(0).And.BeLessThan(run.Seconds);
        }
        var budget = report.Sequences[^1];
        budget.Budgets.Should().HaveCount(3);
        budget.Budgets[0].Should().BeNull("the first task has nothing to retain");
        budget.Budgets.Skip(1).Should().OnlyContain(b => b != null && b.Checks.Count >= 2);

        var summaries = SequenceSummary.Summarize(report.Sequences, resamples: 100);
        summaries.Should().HaveCount(6);
    }

    [Fact]
    public void OLoraKeepsEveryTaskAdapterActiveSoItsFirstTaskIsScoredByTheSumOfAdapters()
    {
        // The first row of the matrix is the same for O-LoRA and one adapter per task (task 0's adapter over the base);
        // after task 1, O-LoRA reads task 0 through both adapters, so its representation moved, while the per-task
        // strategy reads it through task 0's adapter alone, exactly as before.
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var options = MatrixOnly(ForgettingTestData.FastOptions().Epochs);
        var report = new ForgettingEvaluator(ml, options).RunSequences(ComparedModel.FromEncoder(encoder),
            [ForgettingTestData.Sentiment(ml), ForgettingTestData.Subject(ml)],
            [SequenceStrategy.AdapterPerTask, new SequenceMethod("stacked", SequenceStrategy.OrthogonalAdapters) { OrthogonalityStrength = 0 }]);
        var perTask = report.Sequences[0];
        var stacked = report.Sequences[1];
        stacked.Accuracy[0][0].Should().Be(perTask.Accuracy[0][0]);
        stacked.Drift.Single().RepresentationDrift.Last().Should().BeGreaterThan(1e-4, "task 1's adapter now adds to what task 0's head reads");
        perTask.Drift.Single().RepresentationDrift.Should().OnlyContain(v => v < 1e-9);
        perTask.RowCorrect![1][0].Should().Equal(perTask.RowCorrect[0][0]);
    }

    [Fact]
    public void AMethodGivesTheSameResultsAloneAsAfterMethodsThatShareItsFirstTask()
    {
        // The first task's state is computed once per kind of method and copied to the others; that must change nothing.
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var options = MatrixOnly(1);
        var evaluator = new ForgettingEvaluator(ml, options);
        ForgettingTask[] tasks = [ForgettingTestData.Sentiment(ml), ForgettingTestData.Subject(ml)];
        var rehearsal = new SequenceMethod("shared + rehearsal", SequenceStrategy.SharedAdapter) { RehearsalRatio = 0.5 };
        var together = evaluator.RunSequences(ComparedModel.FromEncoder(encoder), tasks,
            [SequenceStrategy.SharedAdapter, SequenceStrategy.MergedAdapters, rehearsal, SequenceStrategy.OrthogonalAdapters, SequenceStrategy.AdapterPerTask]);
        foreach (var method in new SequenceMethod[] { rehearsal, SequenceStrategy.OrthogonalAdapters, SequenceStrategy.AdapterPerTask })
        {
            var alone = evaluator.RunSequences(ComparedModel.FromEncoder(encoder), tasks, [method]).Sequences.Single();
            var shared = together.Sequences.Single(s => s.Method == method.Name);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    shared.RowCorrect![i][j].Should().Equal(alone.RowCorrect![i][j], $"{method.Name}: R[{i}][{j}] row by row");
        }
    }

    [Theory]
    [InlineData("rehearsal")]
    [InlineData("penalty")]
    [InlineData("fresh budget")]
    [InlineData("strength")]
    [InlineData("budget")]
    [InlineData("density")]
    [InlineData("names")]
    public void BadMethodsAreRefusedBeforeTrainingNamingTheSetting(string what)
    {
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var evaluator = new ForgettingEvaluator(ml, ForgettingTestData.FastOptions());
        SequenceMethod[] methods = what switch
        {
            "rehearsal" => [new("per task + replay", SequenceStrategy.AdapterPerTask) { RehearsalRatio = 0.2 }],
            "penalty" => [new("merged + EWC", SequenceStrategy.MergedAdapters) { RetentionPenalty = RetentionPenalty.Ewc(1) }],
            "fresh budget" => [new("per task + budget", SequenceStrategy.AdapterPerTask) { ForgettingBudget = new ForgettingBudget(0.05) }],
            "strength" => [new("nan", SequenceStrategy.FullFineTuning) { RetentionPenalty = RetentionPenalty.L2SP(double.NaN) }],
            "budget" => [new("budget", SequenceStrategy.SharedAdapter) { ForgettingBudget = new ForgettingBudget(1.5) }],
            "density" => [new("merged", SequenceStrategy.MergedAdapters) { MergeDensity = 0 }],
            _ => [SequenceStrategy.SharedAdapter, new SequenceMethod("shared LoRA", SequenceStrategy.SharedAdapter) { RehearsalRatio = 0.1 }],
        };
        string expected = what switch
        {
            "rehearsal" => "*'per task + replay'*rehearsal*SharedAdapter*",
            "penalty" => "*'merged + EWC'*penalty*fresh adapter*Fisher is zero*",
            "fresh budget" => "*'per task + budget'*budget*never scored with*",
            "strength" => "*'nan'.RetentionPenalty.Strength must be a finite number*",
            "budget" => "*'budget'.ForgettingBudget.MaxDrop must be in ?0, 1?*",
            "density" => "*'merged'.MergeDensity must be in (0, 1]*",
            _ => "*Two methods are named 'shared LoRA'*",
        };
        var run = () => evaluator.RunSequences(ComparedModel.FromEncoder(encoder), [ForgettingTestData.Sentiment(ml), ForgettingTestData.Subject(ml)], methods);
        run.Should().Throw<ArgumentException>().WithMessage(expected);
    }
}
