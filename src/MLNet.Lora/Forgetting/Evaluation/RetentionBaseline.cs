using Microsoft.ML;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// A retention task as the reference knows it: its rows, the reference's features, and the frozen probe fitted on
/// them. Candidates are then measured against it.
/// </summary>
internal sealed class RetentionBaseline : IDisposable
{
    private readonly MLContext ml;
    private readonly ForgettingEvaluator.Options options;
    private readonly Tensor referenceTest;

    private RetentionBaseline(MLContext ml, ForgettingEvaluator.Options options, TaskData data, ComparedModel reference, LinearProbe frozen, Tensor referenceTest, double referenceAccuracy)
    {
        this.ml = ml;
        this.options = options;
        Data = data;
        Reference = reference;
        Frozen = frozen;
        this.referenceTest = referenceTest;
        ReferenceAccuracy = referenceAccuracy;
    }

    public TaskData Data { get; }

    public ComparedModel Reference { get; }

    public LinearProbe Frozen { get; }

    public double ReferenceAccuracy { get; }

    /// <summary>Reference features of the test rows [n, d] (CPU float32).</summary>
    public Tensor ReferenceTestFeatures => referenceTest;

    public static RetentionBaseline Fit(MLContext ml, ForgettingEvaluator.Options options, ComparedModel reference, TaskData data, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var train = Features(reference, data.Train, options, cancellationToken);
        var test = Features(reference, data.Test, options, cancellationToken);
        var frozen = LinearProbe.Fit(ml, train, data.Train.Labels, data.ClassCount, options.ProbeL2Regularization);
        double accuracy = frozen.Accuracy(test, data.Test.Labels);
        return new RetentionBaseline(ml, options, data, reference, frozen, test.DetachFromDisposeScope(), accuracy);
    }

    /// <summary>Frozen-probe accuracy on the candidate's features, and (when <paramref name="refit"/>) the accuracy of a probe refitted on them.</summary>
    public (double Frozen, double? Refit) Measure(ComparedModel candidate, bool refit, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var test = Features(candidate, Data.Test, options, cancellationToken);
        double frozen = Frozen.Accuracy(test, Data.Test.Labels);
        if (!refit) return (frozen, null);
        var train = Features(candidate, Data.Train, options, cancellationToken);
        using var probe = LinearProbe.Fit(ml, train, Data.Train.Labels, Data.ClassCount, options.ProbeL2Regularization);
        return (frozen, probe.Accuracy(test, Data.Test.Labels));
    }

    public RetentionResult Result(ComparedModel candidate, double frozen, double refit) => new()
    {
        Task = Data.Name,
        Reference = Reference.Name,
        Candidate = candidate.Name,
        ClassCount = Data.ClassCount,
        ProbeTrainExamples = Data.Train.Count,
        TestExamples = Data.Test.Count,
        MajorityClassAccuracy = Data.Test.Labels.GroupBy(l => l).Max(g => g.Count()) / (double)Data.Test.Count,
        ReferenceAccuracy = ReferenceAccuracy,
        FrozenProbeAccuracy = frozen,
        FrozenProbeDrop = ReferenceAccuracy - frozen,
        RefitProbeAccuracy = refit,
        RefitProbeDrop = ReferenceAccuracy - refit,
    };

    /// <summary>Texts of the test rows used for drift.</summary>
    public IReadOnlyList<string> DriftTexts => Data.Test.Texts.Take(options.DriftExamples).ToList();

    /// <summary>The old-task loss on a fixed batch of test rows, read out by the frozen probe: what sharpness is measured on.</summary>
    public Func<Tensor> SharpnessLoss(ComparedModel model, out int examples)
    {
        var rows = Data.Test.Take(Enumerable.Range(0, Math.Min(options.SharpnessExamples, Data.Test.Count)));
        examples = rows.Count;
        return FixedBatchLoss(model, rows, Frozen, options);
    }

    /// <summary>The old-task loss on gradient batch b (drawn from the training rows), read out by the frozen probe.</summary>
    public Func<int, Tensor> GradientLoss(ComparedModel model) => BatchLoss(model, Data.Train, Frozen, options);

    /// <summary>Cross-entropy of <paramref name="probe"/> over <paramref name="model"/>'s pooled features on one fixed batch.</summary>
    public static Func<Tensor> FixedBatchLoss(ComparedModel model, TaskRows rows, LinearProbe probe, ForgettingEvaluator.Options options)
    {
        var encoded = rows.Encode(model.Tokenizer, options.MaxSequenceLength);
        var indices = Enumerable.Range(0, encoded.Count).ToArray();
        var device = EncoderFeatures.DeviceOf(model.Encoder);
        return () =>
        {
            var (batch, labels) = EncoderFeatures.Collate(encoded, indices, model.Tokenizer.PadTokenId, device);
            return F.cross_entropy(probe.Logits(EncoderFeatures.PooledWithGrad(model.Encoder, batch, options.Pooling)), labels);
        };
    }

    /// <summary>Cross-entropy of <paramref name="probe"/> on gradient batch b: rows [b·size, (b+1)·size) of a seeded order, wrapping around.</summary>
    public static Func<int, Tensor> BatchLoss(ComparedModel model, TaskRows rows, LinearProbe probe, ForgettingEvaluator.Options options)
    {
        var encoded = rows.Encode(model.Tokenizer, options.MaxSequenceLength);
        var device = EncoderFeatures.DeviceOf(model.Encoder);
        return b =>
        {
            var indices = GradientBatch(encoded.Count, b, options.GradientBatchSize);
            var (batch, labels) = EncoderFeatures.Collate(encoded, indices, model.Tokenizer.PadTokenId, device);
            return F.cross_entropy(probe.Logits(EncoderFeatures.PooledWithGrad(model.Encoder, batch, options.Pooling)), labels);
        };
    }

    /// <summary>Indices of gradient batch <paramref name="b"/> over <paramref name="count"/> rows (which were already shuffled by their seeded subsample).</summary>
    public static int[] GradientBatch(int count, int b, int size) =>
        Enumerable.Range(b * size, size).Select(i => i % count).ToArray();

    /// <summary>Pooled features of <paramref name="rows"/> under <paramref name="model"/> (CPU float32, caller's scope).</summary>
    public static Tensor Features(ComparedModel model, TaskRows rows, ForgettingEvaluator.Options options, CancellationToken cancellationToken)
    {
        var encoded = rows.Encode(model.Tokenizer, options.MaxSequenceLength);
        return EncoderFeatures.Pooled(model.Encoder, model.Tokenizer.PadTokenId, encoded.Items, options.Pooling, options.BatchSize, cancellationToken);
    }

    public void Dispose()
    {
        Frozen.Dispose();
        referenceTest.Dispose();
    }
}
