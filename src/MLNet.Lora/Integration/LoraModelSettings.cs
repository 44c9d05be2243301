using System.Text.Json.Serialization;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;

namespace MLNet.Lora.Integration;

/// <summary>
/// Everything a fitted <see cref="LoraTextClassificationTransformer"/> needs besides weights: columns, how the
/// encoder was adapted, the classes, and the base encoder's identity. Saved as JSON beside the adapter weights.
/// </summary>
public sealed record LoraModelSettings
{
    /// <summary>Input text column.</summary>
    public required string TextColumnName { get; init; }

    /// <summary>Optional second text column (pair tasks).</summary>
    public string? SecondTextColumnName { get; init; }

    /// <summary>Output probabilities column.</summary>
    public required string ScoreColumnName { get; init; }

    /// <summary>Output predicted-label (key) column.</summary>
    public required string PredictedLabelColumnName { get; init; }

    /// <summary>The label column the model was trained on (its key values become the predicted label's).</summary>
    public required string LabelColumnName { get; init; }

    /// <summary>Which weights were trained.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<FineTuningMode>))]
    public FineTuningMode Mode { get; init; }

    /// <summary>The adapter's settings (meaningful in <see cref="FineTuningMode.Lora"/>).</summary>
    public required LoraConfig Lora { get; init; }

    /// <summary>How token states are pooled.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<PoolingStrategy>))]
    public PoolingStrategy Pooling { get; init; }

    /// <summary>Tokens per text, special tokens included; longer texts are truncated.</summary>
    public int MaxSequenceLength { get; init; }

    /// <summary>Rows scored per forward pass when transforming an <c>IDataView</c>.</summary>
    public int InferenceBatchSize { get; init; }

    /// <summary>The label's key values in key order (what <c>MapKeyToValue</c> maps predictions back to), or null when it had none.</summary>
    public ClassKeyValues? Classes { get; init; }

    /// <summary>Number of classes.</summary>
    public int ClassCount { get; init; }

    /// <summary>The encoder the adapters were trained on.</summary>
    public required EncoderIdentity BaseEncoder { get; init; }
}
