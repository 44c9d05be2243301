using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Integration;

namespace MLNet.Lora.Onnx;

/// <summary>
/// Scores a text classifier exported by MLNet.Lora on ONNX Runtime: adds <c>Score</c> (class probabilities, with the
/// labels as slot names) and <c>PredictedLabel</c> (a key carrying the label's key values, so that
/// <c>MapKeyToValue</c>, <c>Evaluate</c> and <c>PredictionEngine</c> work as with the TorchSharp transformer).
/// One <c>InferenceSession</c> serves every thread; dispose the transformer to release it.
/// </summary>
public sealed class LoraOnnxTextClassificationTransformer : ITransformer, IDisposable, IRowScorer
{
    private readonly OnnxTextClassifier classifier;

    internal LoraOnnxTextClassificationTransformer(OnnxTextClassifier classifier, string? textColumnName, LoraOnnxScoringOptions options)
    {
        this.classifier = classifier;
        var columns = classifier.Metadata.Columns;
        TextColumnName = textColumnName ?? columns.Text;
        SecondTextColumnName = options.SecondTextColumnName ?? columns.SecondText;
        ScoreColumnName = options.ScoreColumnName ?? columns.Score;
        PredictedLabelColumnName = options.PredictedLabelColumnName ?? columns.PredictedLabel;
    }

    /// <summary>The ONNX file.</summary>
    public string ModelPath => classifier.ModelPath;

    /// <summary>The input text column.</summary>
    public string TextColumnName { get; }

    /// <summary>The second text column of pair tasks, or null.</summary>
    public string? SecondTextColumnName { get; }

    /// <summary>The output probabilities column.</summary>
    public string ScoreColumnName { get; }

    /// <summary>The output predicted-label key column.</summary>
    public string PredictedLabelColumnName { get; }

    /// <summary>Number of classes.</summary>
    public int ClassCount => classifier.Metadata.ClassCount;

    /// <summary>The label's key values in key order (key k is <c>Labels[k - 1]</c>), as invariant text; empty when the label had none.</summary>
    public IReadOnlyList<string> Labels => classifier.Metadata.Labels?.Values ?? [];

    /// <summary>Tokens per text, special tokens included, as trained.</summary>
    public int MaxSequenceLength => classifier.Metadata.MaxLength;

    /// <summary>Rows per forward pass.</summary>
    public int BatchSize => classifier.BatchSize;

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => TextClassifierScoring.OutputSchema(inputSchema,
        TextColumnName, SecondTextColumnName, ScoreColumnName, PredictedLabelColumnName, ClassCount, classifier.Metadata.Labels);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new ScoredDataView(this, input);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoringRowMapper(this, inputSchema);

    /// <summary>Class probabilities for texts (and optional pairs), one row per text, scored in length-sorted batches.</summary>
    public float[][] PredictProbabilities(IReadOnlyList<string?> texts, IReadOnlyList<string?>? pairs = null) =>
        classifier.PredictProbabilities(texts, pairs);

    /// <summary>
    /// This transformer is not saved into ML.NET model files: it references an ONNX file. Save the pipeline without it,
    /// or rebuild it from the ONNX file with <c>mlContext.Transforms.LoraOnnxTextClassification(path)</c>.
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        $"{nameof(LoraOnnxTextClassificationTransformer)} is not saved with mlContext.Model.Save: the ONNX file '{ModelPath}' is the model. " +
        "Rebuild the transformer with mlContext.Transforms.LoraOnnxTextClassification(path).Fit(data) where it is needed.");

    /// <summary>Releases the ONNX Runtime session.</summary>
    public void Dispose() => classifier.Dispose();

    IEnumerable<DataViewSchema.Column> IRowScorer.ScoringColumns(DataViewSchema inputSchema) =>
        TextClassifierScoring.TextColumns(inputSchema, TextColumnName, SecondTextColumnName);

    // Several batches at a time, so that sorting by length packs batches tightly.
    int IRowScorer.ChunkSize => BatchSize * 8;

    IScoringChunk IRowScorer.OpenChunk(DataViewRow input, bool forCursor) =>
        TextClassifierScoring.Chunk(input, TextColumnName, SecondTextColumnName, PredictProbabilities);
}
