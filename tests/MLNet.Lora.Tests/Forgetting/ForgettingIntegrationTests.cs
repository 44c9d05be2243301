using Microsoft.ML;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.Forgetting;

public class ForgettingIntegrationTests
{
    /// <summary>
    /// Task A (sentiment) is what the base knows; task B labels the same kind of text by its subject word, so it needs
    /// other information. Fine-tuning on B fully moves every weight; LoRA moves a rank-2 update of query and value.
    /// The frozen probe fitted for A on the base should therefore lose more under full fine-tuning, and the
    /// representation should drift further.
    /// </summary>
    [Fact]
    public void FullFineTuningForgetsMoreAndDriftsFurtherThanLora()
    {
        var ml = new MLContext(seed: 1);
        using var encoder = TinyEncoders.Create();
        var evaluator = new ForgettingEvaluator(ml, ForgettingTestData.FastOptions());
        var taskB = ml.Data.LoadFromEnumerable(ForgettingTestData.Reviews(240, 5, labelBySubject: true));

        LoraTextClassificationTransformer FineTune(FineTuningMode mode, double learningRate) =>
            ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.LoraTextClassification(
                new LoraTextClassificationTrainer.Options
                {
                    Encoder = encoder, Mode = mode, Rank = 2, Alpha = 4, MaxEpochs = 4, BatchSize = 16,
                    LearningRate = learningRate, MaxSequenceLength = 16, Seed = 4,
                })).Fit(taskB).LastTransformer;

        using var full = FineTune(FineTuningMode.Full, 3e-3);
        using var lora = FineTune(FineTuningMode.Lora, 2e-2);
        var reference = ComparedModel.FromEncoder(encoder, "base");
        var retention = new[] { ForgettingTestData.Sentiment(ml) };
        var fullReport = evaluator.Evaluate(reference, ComparedModel.FromTransformer(full, "full"), retention);
        var loraReport = evaluator.Evaluate(reference, ComparedModel.FromTransformer(lora, "LoRA"), retention);

        // A fair comparison needs both to have learnt task B (the LoRA rate is the higher one, as usual).
        full.TrainingHistory[^1].TrainingLoss.Should().BeLessThan(0.3);
        lora.TrainingHistory[^1].TrainingLoss.Should().BeLessThan(0.3);

        var fullRetention = fullReport.Retention.Single();
        var loraRetention = loraReport.Retention.Single();
        fullRetention.ReferenceAccuracy.Should().BeGreaterThan(0.85, "the base already separates sentiment linearly");
        fullRetention.FrozenProbeDrop.Should().BeGreaterThan(loraRetention.FrozenProbeDrop + 0.05);
        fullReport.Internals.Single().MeanRepresentationDrift.Should().BeGreaterThan(loraReport.Internals.Single().MeanRepresentationDrift + 0.1);
        fullReport.Internals.Single().RepresentationDrift[0].Should().BeGreaterThan(0, "full fine-tuning also moves the embeddings");
        loraReport.Internals.Single().RepresentationDrift[0].Should().BeLessThan(1e-9, "LoRA on query and value leaves the embeddings alone");
    }
}
