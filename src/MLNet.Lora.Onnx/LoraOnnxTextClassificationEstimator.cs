using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Integration;

namespace MLNet.Lora.Onnx;

/// <summary>
/// The estimator of <c>mlContext.Transforms.LoraOnnxTextClassification</c>: nothing is trained; <see cref="Fit"/> opens
/// the ONNX file (checking that MLNet.Lora wrote it) and checks the text columns.
/// </summary>
public sealed class LoraOnnxTextClassificationEstimator : IEstimator<LoraOnnxTextClassificationTransformer>
{
    private readonly string modelPath;
    private readonly string? textColumnName;
    private readonly LoraOnnxScoringOptions options;

    internal LoraOnnxTextClassificationEstimator(string modelPath, string? textColumnName, LoraOnnxScoringOptions? options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelPath);
        if (textColumnName is not null) ArgumentException.ThrowIfNullOrWhiteSpace(textColumnName);
        this.modelPath = modelPath;
        this.textColumnName = textColumnName;
        this.options = options ?? new LoraOnnxScoringOptions();
    }

    /// <summary>Opens the model and checks <paramref name="input"/>'s schema.</summary>
    public LoraOnnxTextClassificationTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var classifier = OnnxTextClassifier.Open(modelPath, options);
        var transformer = new LoraOnnxTextClassificationTransformer(classifier, textColumnName, options);
        try
        {
            transformer.GetOutputSchema(input.Schema);
            return transformer;
        }
        catch
        {
            transformer.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        // The columns' names and the labels live in the file: read them without keeping a session.
        var classifier = OnnxTextClassifier.Open(modelPath, options);
        using var transformer = new LoraOnnxTextClassificationTransformer(classifier, textColumnName, options);   // owns the classifier
        TextClassifierScoring.CheckTextColumn(inputSchema, transformer.TextColumnName, "text");
        if (transformer.SecondTextColumnName is { } second) TextClassifierScoring.CheckTextColumn(inputSchema, second, "second text");
        var keyValues = classifier.Metadata.Labels?.KeyAnnotations();
        var annotations = keyValues is null
            ? null
            : new SchemaShape(keyValues.Schema.Select(c => SchemaShapeColumns.Create(c.Name, SchemaShape.Column.VectorKind.Vector,
                ((VectorDataViewType)c.Type).ItemType, false)));
        return TextClassifierScoring.OutputShape(inputSchema, transformer.ScoreColumnName, transformer.PredictedLabelColumnName, annotations);
    }
}
