namespace MLNet.Lora.Onnx;

/// <summary>Options of <c>mlContext.Transforms.LoraOnnxTextClassification</c>.</summary>
public sealed class LoraOnnxScoringOptions
{
    /// <summary>The second text column for pair tasks; the exported model's own when null.</summary>
    public string? SecondTextColumnName { get; set; }

    /// <summary>The output probabilities column; the exported model's (<c>Score</c>) when null.</summary>
    public string? ScoreColumnName { get; set; }

    /// <summary>The output predicted-label key column; the exported model's (<c>PredictedLabel</c>) when null.</summary>
    public string? PredictedLabelColumnName { get; set; }

    /// <summary>Rows per forward pass when transforming an <c>IDataView</c> (texts are sorted by length first). Default 64.</summary>
    public int BatchSize { get; set; } = 64;

    /// <summary>ONNX Runtime's intra-op threads; 0 (default) lets it use one per physical core.</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Whether ONNX Runtime's idle threads spin waiting for work (its default, true): lowest latency when the process does
    /// nothing else, but they take CPU from other work in the same process between calls. False sets
    /// <c>session.intra_op.allow_spinning</c> to 0.
    /// </summary>
    public bool AllowSpinning { get; set; } = true;
}
