using MLNet.Lora;
using MLNet.Lora.Export;
using MLNet.Lora.Integration;

namespace Microsoft.ML;

/// <summary>Exporting a fitted pipeline's LoRA text classifier to ONNX from <c>mlContext.Model</c>.</summary>
public static class LoraOnnxExportOperations
{
    /// <summary>
    /// Finds the one <see cref="LoraTextClassificationTransformer"/> in <paramref name="model"/> (a chain or the transformer
    /// itself) and writes it as an ONNX file; see <see cref="LoraTextClassificationTransformer.ExportOnnx"/>. The other
    /// transforms of the chain (such as <c>MapValueToKey</c> before it or <c>MapKeyToValue</c> after it) are not part of
    /// the file: the scorer in MLNet.Lora.Onnx restores the label's key values from the file's metadata.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="model">The fitted model.</param>
    /// <param name="path">The <c>.onnx</c> file to write; its folder must exist.</param>
    /// <param name="options">float32 (default) or dynamic int8.</param>
    public static void ExportLoraToOnnx(this ModelOperationsCatalog catalog, ITransformer model, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        var found = AdapterModelArchive.Flatten(model).OfType<LoraTextClassificationTransformer>().ToList();
        var lora = found.Count switch
        {
            1 => found[0],
            0 => throw new ArgumentException(
                $"The model holds no {nameof(LoraTextClassificationTransformer)} to export to '{path}'; pass the pipeline fitted with LoraTextClassification.", nameof(model)),
            _ => throw new ArgumentException(
                $"The model holds {found.Count} LoRA text classifiers; an ONNX file holds one. Call ExportOnnx on the one to export to '{path}'.", nameof(model)),
        };
        lora.ExportOnnx(path, options);
    }
}
