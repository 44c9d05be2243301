namespace MLNet.Lora.Export;

/// <summary>Options of <see cref="LoraTextClassificationTransformer.ExportOnnx"/>.</summary>
public sealed class OnnxExportOptions
{
    /// <summary>float32 (the default) or dynamic int8 weights for the encoder's linear layers.</summary>
    public OnnxQuantization Quantization { get; set; } = OnnxQuantization.None;

    /// <summary>Whether to replace an existing file at the target path (default true).</summary>
    public bool Overwrite { get; set; } = true;
}
