namespace MLNet.Lora.Export;

/// <summary>How the exported ONNX model stores the encoder's linear layers.</summary>
public enum OnnxQuantization
{
    /// <summary>float32 throughout; standard operators only, so any ONNX runtime loads the file.</summary>
    None,

    /// <summary>
    /// Dynamic int8, as ONNX Runtime's own dynamic quantizer: the weights of the encoder's linear layers are stored as int8
    /// with one scale per output channel (see <see cref="OnnxExportOptions.ReduceRange"/> for AVX2 machines without VNNI), and each
    /// layer's input is quantized at run time with <c>DynamicQuantizeLinear</c> and multiplied with <c>MatMulInteger</c>.
    /// Embeddings, LayerNorm, the pooler and the head stay float32. About a third of the float32 file; see
    /// docs/deployment.md for speed and accuracy.
    /// </summary>
    DynamicInt8,
}
