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
        CheckShape(inputSchema, transformer.TextColumnName, "text");
        if (transformer.SecondTextColumnName is { } second) CheckShape(inputSchema, second, "second text");
        var keyValues = classifier.Metadata.Labels?.KeyAnnotations();
        var annotations = keyValues is null
            ? null
            : new SchemaShape(keyValues.Schema.Select(c => SchemaShapeColumns.Create(c.Name, SchemaShape.Column.VectorKind.Vector,
                ((VectorDataViewType)c.Type).ItemType, false)));
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[transformer.ScoreColumnName] = SchemaShapeColumns.Create(transformer.ScoreColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        columns[transformer.PredictedLabelColumnName] = SchemaShapeColumns.Create(transformer.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar,
            NumberDataViewType.UInt32, true, annotations);
        return new SchemaShape(columns.Values);
    }

    private static void CheckShape(SchemaShape schema, string name, string role)
    {
        if (schema.Where(c => c.Name == name).Select(c => (SchemaShape.Column?)c).LastOrDefault() is not { } column)
            throw new ArgumentOutOfRangeException(nameof(schema), $"The {role} column '{name}' is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.ItemType is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(schema), $"The {role} column '{name}' must be text (string), but it is {column.ItemType}.");
    }
}
