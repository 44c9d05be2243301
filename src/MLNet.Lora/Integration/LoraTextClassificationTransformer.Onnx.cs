using MLNet.Lora.Export;

namespace MLNet.Lora;

public sealed partial class LoraTextClassificationTransformer
{
    /// <summary>
    /// Writes this model as one self-contained ONNX file (atomically): the encoder with the adapters merged, the pooling,
    /// the head and a softmax, plus metadata (label key values, tokenizer and vocabulary, maximum length, pooling, base
    /// encoder identity, package version). Score it without TorchSharp with MLNet.Lora.Onnx
    /// (<c>mlContext.Transforms.LoraOnnxTextClassification(path)</c>) or with ONNX Runtime from any language: inputs
    /// <c>input_ids</c>, <c>attention_mask</c>, <c>token_type_ids</c> (int64 [batch, sequence]); outputs <c>logits</c> and
    /// <c>probabilities</c> (float32 [batch, classes]). See docs/deployment.md.
    /// </summary>
    /// <param name="path">The <c>.onnx</c> file to write; its folder must exist.</param>
    /// <param name="options">float32 (default) or dynamic int8.</param>
    /// <exception cref="DirectoryNotFoundException">The folder of <paramref name="path"/> does not exist.</exception>
    /// <exception cref="InvalidOperationException">The adapters or weights have diverged (non-finite values).</exception>
    /// <example>
    /// <code>
    /// var lora = (LoraTextClassificationTransformer)fitted.LastTransformer;
    /// lora.ExportOnnx("model.onnx");
    /// lora.ExportOnnx("model.int8.onnx", new OnnxExportOptions { Quantization = OnnxQuantization.DynamicInt8 });
    /// </code>
    /// </example>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => LoraOnnxExporter.Export(this, path, options);
}
