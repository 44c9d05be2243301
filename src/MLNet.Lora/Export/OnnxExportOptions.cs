namespace MLNet.Lora.Export;

/// <summary>Options of <see cref="LoraTextClassificationTransformer.ExportOnnx"/>.</summary>
public sealed class OnnxExportOptions
{
    /// <summary>float32 (the default) or dynamic int8 weights for the encoder's linear layers.</summary>
    public OnnxQuantization Quantization { get; set; } = OnnxQuantization.None;

    /// <summary>
    /// Under <see cref="OnnxQuantization.DynamicInt8"/>: store the weights in 7 bits ([-64, 64]) instead of 8, as ONNX
    /// Runtime's <c>reduce_range</c>. Use it for models that will run on x64 CPUs with AVX2 but without VNNI, where ONNX
    /// Runtime's uint8 × int8 kernel can saturate with full-range weights; it costs some accuracy elsewhere. Default false.
    /// </summary>
    public bool ReduceRange { get; set; }

    /// <summary>Whether to replace an existing file at the target path (default true).</summary>
    public bool Overwrite { get; set; } = true;
}
