using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Training;

/// <summary>
/// An encoder with a classification head: logits = classifier(dropout(pool(bert(tokens)))). Names follow Hugging Face's
/// <c>BertForSequenceClassification</c> (<c>bert.*</c>, <c>classifier.*</c>).
/// </summary>
public sealed class TextClassificationModel : nn.Module
{
    private readonly BertModel bert;
    private readonly Dropout dropout;
    private readonly Linear classifier;

    /// <summary>Puts a fresh head of <paramref name="classCount"/> outputs over <paramref name="encoder"/>, which this model then owns.</summary>
    public TextClassificationModel(BertModel encoder, int classCount, PoolingStrategy pooling, double headDropout = 0.1)
        : base(nameof(TextClassificationModel))
    {
        if (classCount < 2) throw new ArgumentOutOfRangeException(nameof(classCount), classCount, "A classifier needs at least two classes.");
        if (pooling == PoolingStrategy.Pooler && !encoder.Config.AddPoolingLayer)
            throw new ArgumentException(MLNet.Lora.Encoders.Pooling.NoPoolerMessage("The base encoder"), nameof(pooling));
        bert = encoder;
        dropout = nn.Dropout(headDropout);
        classifier = NewHead(encoder.Config.HiddenSize, classCount);
        Pooling = pooling;
        RegisterComponents();
    }

    /// <summary>A fresh classification head as BERT initialises one: weights N(0, 0.02²), bias 0.</summary>
    internal static Linear NewHead(long hiddenSize, long classCount)
    {
        var head = nn.Linear(hiddenSize, classCount);
        using var _ = no_grad();
        nn.init.normal_(head.weight!, 0, 0.02);
        nn.init.zeros_(head.bias!);
        return head;
    }

    /// <summary>The encoder.</summary>
    public BertModel Encoder => bert;

    /// <summary>The classification head.</summary>
    public Linear Classifier => classifier;

    /// <summary>Number of classes.</summary>
    public int ClassCount => (int)classifier.weight!.shape[0];

    /// <summary>How token states are pooled before the head.</summary>
    public PoolingStrategy Pooling { get; }

    /// <summary>Class logits, [batch, classes].</summary>
    public Tensor forward(TokenBatch batch) => classifier.forward(dropout.forward(Features(batch)));

    /// <summary>Logits of pooled <paramref name="features"/> through <paramref name="head"/> (another task's, when replaying it), with this model's head dropout.</summary>
    internal Tensor Logits(Tensor features, Linear head) => head.forward(dropout.forward(features));

    /// <summary>The pooled features the head sees, [batch, hidden].</summary>
    public Tensor Features(TokenBatch batch)
    {
        var output = bert.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        return MLNet.Lora.Encoders.Pooling.Pool(output, batch.AttentionMask, Pooling);
    }

    /// <summary>
    /// The weights a fit in <paramref name="mode"/> changes, by parameter name, found by structure: every weight
    /// (<see cref="FineTuningMode.Full"/>), the head (<see cref="FineTuningMode.HeadOnly"/>), or the head and the default
    /// adapter's factors (<see cref="FineTuningMode.Lora"/>, named as the module tree names them,
    /// <c>bert.encoder.layer.0.attention.self.query.lora_A.default.weight</c>, as the adapter zip has always stored them).
    /// </summary>
    internal Dictionary<string, Tensor> TrainedWeights(FineTuningMode mode)
    {
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        if (mode == FineTuningMode.Full)
        {
            foreach (var (name, parameter) in named_parameters()) weights[name] = parameter;
            return weights;
        }
        foreach (var (name, parameter) in classifier.named_parameters()) weights[$"{nameof(classifier)}.{name}"] = parameter;
        if (mode == FineTuningMode.Lora)
            foreach (var (key, factor) in LoraInjector.AdapterState(bert, LoraInjector.DefaultAdapterName, $"{nameof(bert)}.", AdapterKeyStyle.WithAdapterName))
                weights[key] = factor;
        return weights;
    }
}
