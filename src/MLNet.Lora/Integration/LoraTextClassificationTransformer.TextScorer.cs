using MLNet.Lora.Integration;

namespace MLNet.Lora;

/// <summary>
/// The transformer as an <see cref="ITextProbabilityScorer"/>, the shape MLNet.Lora.Core's batch-scored view and row
/// mapper take (the ONNX scorer uses them too), so that both transformers can share one scoring data path.
/// </summary>
public sealed partial class LoraTextClassificationTransformer : ITextProbabilityScorer
{
    string ITextProbabilityScorer.TextColumnName => Settings.TextColumnName;

    string? ITextProbabilityScorer.SecondTextColumnName => Settings.SecondTextColumnName;

    int ITextProbabilityScorer.BatchSize => Settings.InferenceBatchSize;

    float[][] ITextProbabilityScorer.PredictProbabilities(IReadOnlyList<string?> texts, IReadOnlyList<string?>? pairs) => PredictProbabilities(texts, pairs);
}
