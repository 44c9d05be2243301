using Microsoft.ML;
using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Tests.Forgetting;

/// <summary>Runs a three-task sequence once per strategy on the tiny encoder, shared by the tests below.</summary>
public sealed class TaskSequenceFixture : IDisposable
{
    public TaskSequenceFixture()
    {
        var ml = new MLContext(seed: 1);
        Encoder = TinyEncoders.Create();
        ParameterCount = Encoder.ParameterCount;
        var evaluator = new ForgettingEvaluator(ml, ForgettingTestData.FastOptions());
        Report = evaluator.RunSequences(ComparedModel.FromEncoder(Encoder),
            [ForgettingTestData.Sentiment(ml), ForgettingTestData.Subject(ml), ForgettingTestData.Topics(ml, withTest: true)],
            [SequenceStrategy.FullFineTuning, SequenceStrategy.SharedAdapter, SequenceStrategy.AdapterPerTask]);
    }

    public MLNet.Lora.Checkpoints.PretrainedEncoder Encoder { get; }

    public long ParameterCount { get; }

    public ForgettingReport Report { get; }

    public SequenceResult Of(SequenceStrategy strategy) => Report.Sequences.Single(s => s.Strategy == strategy);

    public void Dispose() => Encoder.Dispose();
}

public class TaskSequenceTests(TaskSequenceFixture fixture) : IClassFixture<TaskSequenceFixture>
{
    [Fact]
    public void AdapterPerTaskFillsTheMatrixAsItsStructureDictates()
    {
        var q = fixture.Of(SequenceStrategy.AdapterPerTask);
        var r = q.Accuracy;
        q.Tasks.Should().Equal("sentiment", "subject", "topics");
        for (int i = 0; i < 3; i++)
        {
            for (int j = 0; j < 3; j++)
            {
                if (j <= i) r[i][j].Should().Be(r[j][j], $"R[{i}][{j}]: task {j} keeps its own adapter and head, which later tasks never touch");
                else r[i][j].Should().Be(q.Baseline[j], $"R[{i}][{j}]: task {j}'s adapter does not exist yet, so the probe sees the untouched base");
            }
        }
        q.AverageForgetting.Should().Be(0);
        q.AverageForgettingFirst.Should().Be(0);
        q.BackwardTransfer.Should().Be(0);
        q.ForwardTransfer.Should().Be(0);
        q.Steps.Should().HaveCount(3).And.OnlyContain(s => s.Drop == 0);
        q.Drift.Should().HaveCount(2).And.OnlyContain(d => d.RepresentationDrift.All(v => v < 1e-9) && d.AttentionDrift.All(h => h.All(v => v < 1e-9)));
        q.TrainedParameters.Should().Equal(512, 512, 512);   // rank 2 × (32 + 32) × (query, value) × 2 layers
        q.Sharpness.Select(s => s.ParameterSet).Should().Equal("adapter task0", "adapter task1", "adapter task2");
        q.GradientConflicts.Should().HaveCount(2).And.OnlyContain(g => g.Adapters.Count == 0 && g.AdapterNote!.Contains("fresh adapter"));
        q.GradientConflicts.Select(g => g.OldTask).Should().Equal("sentiment", "sentiment+subject");
    }

    [Fact]
    public void SummariesAreTheAccuracyMatrixs()
    {
        foreach (var q in fixture.Report.Sequences)
        {
            var m = q.ToAccuracyMatrix();
            q.AverageAccuracy.Should().Be(m.AverageAccuracy);
            q.AverageForgetting.Should().Be(m.AverageForgetting(ForgettingConvention.Max));
            q.AverageForgettingFirst.Should().Be(m.AverageForgetting(ForgettingConvention.First));
            q.BackwardTransfer.Should().Be(m.BackwardTransfer);
            q.ForwardTransfer.Should().Be(m.ForwardTransfer);
            q.Steps.Select(s => (s.OldTask, s.NewTask)).Should().Equal(("sentiment", "subject"), ("sentiment", "topics"), ("subject", "topics"));
            q.Steps[1].Before.Should().Be(q.Accuracy[1][0]);
            q.Steps[1].After.Should().Be(q.Accuracy[2][0]);
            q.Accuracy.SelectMany(row => row).Should().OnlyContain(v => v >= 0 && v <= 1);
        }
        fixture.Report.Similarities.Should().HaveCount(3);
        fixture.Report.Correlations.Should().HaveCount(6, "two similarity measures for each of three strategies");
        fixture.Report.Correlations.Should().OnlyContain(c => c.Points.Count == 3);
    }

    [Fact]
    public void FullFineTuningTrainsEveryWeightAndMovesTheRepresentation()
    {
        var full = fixture.Of(SequenceStrategy.FullFineTuning);
        full.TrainedParameters.Should().OnlyContain(n => n == fixture.ParameterCount);
        full.Drift.Should().HaveCount(2);
        full.Drift.Select(d => d.RepresentationDrift.Last()).Should().OnlyContain(v => v > 0.01);
        full.GradientConflicts.Should().OnlyContain(g => g.Adapters.Count == 0 && g.WeightMatrices.Count == 6);

        var shared = fixture.Of(SequenceStrategy.SharedAdapter);
        shared.GradientConflicts.Should().OnlyContain(g => g.Adapters.Select(a => a.ModuleKind).SequenceEqual(new[] { "query", "value" }));
        shared.Sharpness.Should().OnlyContain(s => s.ParameterSet == "adapter shared");
    }

    [Fact]
    public void TheStartModelIsNotTouched()
    {
        // Every strategy trains a copy; the caller's encoder still has no adapters and the weights it was created with.
        using var fresh = TinyEncoders.Create();
        MLNet.Lora.Adapters.LoraInjector.FindLoraLayers(fixture.Encoder.Model).Should().BeEmpty();
        fixture.Encoder.Model.named_parameters().Should().OnlyContain(p => p.parameter.Identical(fresh.Model.get_parameter(p.name)!));
    }
}
