using Microsoft.ML;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.Forgetting;

public class ForgettingMonitorTests
{
    [Fact]
    public void RecordsEverySignalAfterEachEpochOfTheTrainer()
    {
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var evaluator = new ForgettingEvaluator(ml, ForgettingTestData.FastOptions());
        var messages = new List<string>();
        using var monitor = evaluator.CreateMonitor(ComparedModel.FromEncoder(encoder), [ForgettingTestData.Sentiment(ml), ForgettingTestData.Topics(ml)],
            newTask: ForgettingTestData.Subject(ml), label: "full on subject", progress: new Recorder(p => messages.Add(p.Message)));
        monitor.Timeline.Points.Should().ContainSingle("epoch 0 is measured on creation");

        var options = new LoraTextClassificationTrainer.Options
        {
            Encoder = encoder, Mode = FineTuningMode.Full, MaxEpochs = 3, BatchSize = 16, LearningRate = 3e-3, MaxSequenceLength = 16, Seed = 2,
            EpochEnded = monitor.OnEpochEnded,
        };
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options))
            .Fit(ml.Data.LoadFromEnumerable(ForgettingTestData.Reviews(160, 2, labelBySubject: true)));
        model.LastTransformer.TrainingHistory.Should().HaveCount(3, "the monitor does not disturb training");

        var timeline = monitor.Timeline;
        timeline.RetentionTasks.Should().Equal("sentiment", "topics");
        timeline.Points.Select(p => p.Epoch).Should().Equal(0, 1, 2, 3);
        var start = timeline.Points[0];
        start.RetentionDrop.Should().Be(0);
        start.MaxRepresentationDrift.Should().BeLessThan(1e-9);
        start.MaxAttentionDrift.Should().BeLessThan(1e-9);
        start.TrainingLoss.Should().BeNull();
        start.TopHessianEigenvalue.Should().NotBeNull();
        start.WeightMatrixConflictRate.Should().NotBeNull();
        start.AdapterConflictRate.Should().BeNull("full fine-tuning has no adapters");
        timeline.Points.Skip(1).Should().OnlyContain(p => p.TrainingLoss != null && p.FrozenProbeAccuracy.Count == 2 && p.RefitProbeAccuracy.Count == 2);
        timeline.Points[^1].MaxRepresentationDrift.Should().BeGreaterThan(0.01, "three epochs of full fine-tuning move the representation");
        timeline.Onsets.Select(o => o.Signal).Should().Equal("retention", "attention", "representation", "sharpness");
        timeline.Verdict.Should().BeOneOf("none", "inside-only", "outside-only", "inside-first", "same-epoch", "outside-first");
        messages.Should().Contain(m => m.Contains("full on subject epoch 3"));

        monitor.Dispose();
        monitor.Timeline.RetentionTasks.Should().Equal("sentiment", "topics");
        FluentActions.Invoking(() => monitor.OnEpochEnded(null!)).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void CancellingTheMonitorStopsTraining()
    {
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var evaluator = new ForgettingEvaluator(ml, ForgettingTestData.FastOptions());
        using var cancellation = new CancellationTokenSource();
        using var monitor = evaluator.CreateMonitor(ComparedModel.FromEncoder(encoder), [ForgettingTestData.Sentiment(ml)], cancellationToken: cancellation.Token);
        var options = new LoraTextClassificationTrainer.Options
        {
            Encoder = encoder, MaxEpochs = 5, MaxSequenceLength = 16, Seed = 2,
            EpochEnded = context => { cancellation.Cancel(); monitor.OnEpochEnded(context); },
        };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options));
        FluentActions.Invoking(() => pipeline.Fit(ml.Data.LoadFromEnumerable(ForgettingTestData.Reviews(48, 2, labelBySubject: true))))
            .Should().Throw<OperationCanceledException>();
        monitor.Timeline.Points.Should().ContainSingle();
    }
}
