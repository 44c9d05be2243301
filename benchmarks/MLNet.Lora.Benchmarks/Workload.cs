using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Integration;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>The default encoder, loaded once, and what the sections build from it.</summary>
internal sealed class Workload : IDisposable
{
    /// <summary>Rows of the reference batch.</summary>
    public const int Batch = 32;

    /// <summary>Tokens per row of the reference batch.</summary>
    public const int Sequence = 128;

    private Workload(PretrainedEncoder encoder) => Encoder = encoder;

    public PretrainedEncoder Encoder { get; }

    public BertConfig Config => Encoder.Config;

    public static Workload Load() => new(PretrainedEncoder.LoadDefault());

    /// <summary>The trainer's defaults: what a user who sets nothing gets.</summary>
    public static LoraTextClassificationTrainer.Options DefaultOptions(FineTuningMode mode) => new() { Mode = mode };

    /// <summary>
    /// Multiply-adds × 2 of one forward pass: the six projections of each layer (q, k, v, attention output, the two
    /// feed-forward ones), the two attention products (QKᵀ and PV), and the pooler. Embeddings, LayerNorm, softmax,
    /// GELU and the head are left out (they are not matrix products; a few percent at most).
    /// </summary>
    public static double ForwardFlops(BertConfig c, long batch, long seq)
    {
        double tokens = batch * seq;
        double h = c.HiddenSize, i = c.IntermediateSize;
        double projections = 2 * tokens * (4 * h * h + 2 * h * i);
        double attention = 2 * 2 * batch * seq * seq * h;
        double pooler = 2 * batch * h * h;
        return c.NumHiddenLayers * (projections + attention) + pooler;
    }

    /// <summary>A text classifier over a copy of the default encoder, set up for <paramref name="mode"/> as the trainer does.</summary>
    /// <param name="mode">Which weights train.</param>
    /// <param name="classCount">Classes of the head.</param>
    /// <param name="copy">Copy the encoder (true), or adapt the loaded one itself, as a Fit that loads its own encoder does (false; once only).</param>
    /// <param name="attentionDropout">The trainer's <c>AttentionDropout</c>: null keeps the checkpoint's.</param>
    public TextClassificationModel Build(FineTuningMode mode, int classCount = 2, bool copy = true, double? attentionDropout = null)
    {
        var encoder = copy ? Encoder.Model.Clone() : Encoder.Model;
        if (attentionDropout is { } p) encoder.AttentionDropout = p;
        var model = LoraTextClassificationTransformer.BuildModel(encoder, Settings(mode, classCount), DefaultOptions(mode).HeadDropout);
        FineTuningLoop.PrepareParameters(model, mode);
        return model;
    }

    /// <summary>A transformer over <paramref name="model"/> (from <see cref="Build"/>), as a fit of <paramref name="mode"/> returns it, scoring on the CPU.</summary>
    public LoraTextClassificationTransformer Transformer(TextClassificationModel model, FineTuningMode mode) =>
        new(new Microsoft.ML.MLContext(seed: 1), model, MLNet.Lora.Checkpoints.SharedBaseEncoder.For(Encoder), Settings(mode, model.ClassCount), TorchSharp.torch.CPU);

    /// <summary>The settings the trainer would record for <paramref name="mode"/> with its defaults.</summary>
    public LoraModelSettings Settings(FineTuningMode mode, int classCount = 2)
    {
        var options = DefaultOptions(mode);
        return new LoraModelSettings
        {
            TextColumnName = "Text",
            ScoreColumnName = "Score",
            PredictedLabelColumnName = "PredictedLabel",
            LabelColumnName = "Label",
            Mode = mode,
            Lora = options.Validate(),
            Pooling = options.Pooling,
            MaxSequenceLength = options.MaxSequenceLength,
            InferenceBatchSize = options.InferenceBatchSize,
            ClassCount = classCount,
            BaseEncoder = Encoder.Identity,
        };
    }

    /// <summary>The fine-tuning loop the trainer would run for <paramref name="mode"/>, with its default settings.</summary>
    public FineTuningLoop Loop(TextClassificationModel model, FineTuningMode mode, RetentionControls? controls = null)
    {
        var options = DefaultOptions(mode);
        var settings = new FineTuningSettings
        {
            Mode = mode,
            MaxEpochs = options.MaxEpochs,
            BatchSize = options.BatchSize,
            LearningRate = options.EffectiveLearningRate,
            WeightDecay = options.WeightDecay,
            WarmupRatio = options.WarmupRatio,
            MaxGradientNorm = options.MaxGradientNorm,
            MaxSequenceLength = options.MaxSequenceLength,
        };
        return new FineTuningLoop(model, Encoder.Tokenizer, settings, CPU, controls: controls);
    }

    /// <summary>Random token ids, every position real: <c>[CLS] ... [SEP]</c>, [batch, seq]. The tensors live until disposed.</summary>
    public EncodedText[] RandomItems(int batch = Batch, int seq = Sequence, int seed = 7)
    {
        var random = new Random(seed);
        var items = new EncodedText[batch];
        for (int b = 0; b < batch; b++)
        {
            var ids = new int[seq];
            for (int t = 0; t < seq; t++) ids[t] = random.Next(1000, (int)Config.VocabSize);
            ids[0] = Encoder.Tokenizer.ClassificationTokenId;
            ids[^1] = Encoder.Tokenizer.SeparatorTokenId;
            items[b] = new EncodedText(ids, new int[seq], false);
        }
        return items;
    }

    public TokenBatch RandomBatch(int batch = Batch, int seq = Sequence, int seed = 7)
    {
        var tokens = TokenBatch.Collate(RandomItems(batch, seq, seed), Encoder.Tokenizer.PadTokenId);
        foreach (var t in new[] { tokens.InputIds, tokens.AttentionMask, tokens.TokenTypeIds }) t.DetachFromDisposeScope();
        return tokens;
    }

    public static Tensor RandomLabels(int batch, int classes, int seed = 7)
    {
        var random = new Random(seed);
        return tensor(Enumerable.Range(0, batch).Select(_ => (long)random.Next(classes)).ToArray()).DetachFromDisposeScope();
    }

    /// <summary>Gives every adapter a non-zero B so that adapted and bare models differ (a fresh adapter is the identity).</summary>
    public static void RandomizeAdapters(TextClassificationModel model, int seed = 3)
    {
        using var _ = no_grad();
        var generator = new Generator((ulong)seed);
        foreach (var factors in LoraInjector.Adapters(model.Encoder))
            factors.B.copy_(randn(factors.B.shape, generator: generator) * 0.02);
    }

    public static int ParametersOf(TextClassificationModel model) => (int)model.parameters().Sum(p => p.numel());

    public void Dispose() => Encoder.Dispose();
}
