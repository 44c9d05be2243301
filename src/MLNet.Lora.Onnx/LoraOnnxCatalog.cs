using MLNet.Lora.Onnx;

namespace Microsoft.ML;

/// <summary>The catalog method of MLNet.Lora.Onnx on <c>mlContext.Transforms</c>.</summary>
public static class LoraOnnxCatalog
{
    /// <summary>
    /// Scores texts with a classifier that MLNet.Lora exported to ONNX (<c>ExportOnnx</c>), on ONNX Runtime and without
    /// TorchSharp: adds <c>Score</c> (probabilities) and <c>PredictedLabel</c> (a key with the label's key values; append
    /// <c>MapKeyToValue("PredictedLabel")</c> for the values themselves).
    /// </summary>
    /// <param name="catalog"><c>mlContext.Transforms</c>.</param>
    /// <param name="modelPath">The <c>.onnx</c> file.</param>
    /// <param name="textColumnName">The input text column; default the one the model was trained on (from the file's metadata).</param>
    /// <param name="options">Output column names, batch size, threads.</param>
    /// <example>
    /// <code>
    /// var pipeline = ml.Transforms.LoraOnnxTextClassification("model.onnx")
    ///     .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    /// using var model = pipeline.Fit(data);   // opens the file; nothing is trained
    /// </code>
    /// </example>
    public static LoraOnnxTextClassificationEstimator LoraOnnxTextClassification(this TransformsCatalog catalog, string modelPath,
        string? textColumnName = null, LoraOnnxScoringOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LoraOnnxTextClassificationEstimator(modelPath, textColumnName, options);
    }
}
