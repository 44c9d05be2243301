using Onnx;
using static MLNet.Lora.Export.OnnxGraph;

namespace MLNet.Lora.Export;

/// <summary>
/// A linear layer's product x W in dynamic int8, the pattern ONNX Runtime's dynamic quantizer writes:
/// <c>DynamicQuantizeLinear(x)</c> gives uint8 x with its scale and zero point, <c>MatMulInteger</c> multiplies by the
/// int8 weight, and the int32 result is cast to float and scaled by x's scale times each output channel's weight scale.
/// ONNX Runtime fuses the four into one <c>DynamicQuantizeMatMul</c> kernel when it optimises the graph.
/// </summary>
internal static class DynamicInt8Linear
{
    /// <summary>The weights' symmetric int8 range, [-127, 127].</summary>
    internal const int FullRange = 127;

    /// <summary>
    /// The 7-bit range of ONNX Runtime's <c>reduce_range</c>: on AVX2 without VNNI, uint8 × int8 products are summed in
    /// pairs into int16 (<c>vpmaddubsw</c>), and 255 · 64 · 2 stays below 32767 where 255 · 127 · 2 can saturate.
    /// </summary>
    internal const int ReducedRange = 64;

    /// <summary>Writes the int8 product of <paramref name="input"/> and the [out, in] <paramref name="weight"/>; returns the float32 result's name.</summary>
    public static string Write(OnnxGraph g, string input, string prefix, float[] weight, long[] shape, int limit)
    {
        var (quantized, scales) = Quantize(weight, checked((int)shape[0]), checked((int)shape[1]), limit);
        string weightName = g.Initializer($"{prefix}.weight_quantized", quantized, shape[1], shape[0]);
        string scaleName = g.Initializer($"{prefix}.weight_scale", scales, shape[0]);
        var parts = g.Node("DynamicQuantizeLinear", [input], [$"{prefix}/input_quantized", $"{prefix}/input_scale", $"{prefix}/input_zero_point"]);
        string integer = g.Node("MatMulInteger", [parts[0], weightName, parts[2]], $"{prefix}/matmul_integer");
        string product = g.Node("Cast", [integer], $"{prefix}/matmul_float", Int("to", (long)TensorProto.Types.DataType.Float));
        string scale = g.Node("Mul", [parts[1], scaleName], $"{prefix}/scale");
        return g.Node("Mul", [product, scale], $"{prefix}/matmul");
    }

    /// <summary>
    /// Symmetric per-output-channel quantization of a PyTorch [out, in] weight into the [in, out] int8 layout MatMulInteger
    /// takes: scale_j = max |W_j| / limit, q = round(W / scale_j), zero point 0.
    /// </summary>
    internal static (sbyte[] Quantized, float[] Scales) Quantize(float[] weight, int outFeatures, int inFeatures, int limit)
    {
        var quantized = new sbyte[weight.Length];
        var scales = new float[outFeatures];
        for (int o = 0; o < outFeatures; o++)
        {
            var row = weight.AsSpan(o * inFeatures, inFeatures);
            float max = 0;
            foreach (float w in row) max = Math.Max(max, Math.Abs(w));
            float scale = max > 0 ? max / limit : 1f;
            scales[o] = scale;
            for (int i = 0; i < inFeatures; i++)
                quantized[i * outFeatures + o] = (sbyte)Math.Clamp(MathF.Round(row[i] / scale, MidpointRounding.ToEven), -limit, limit);
        }
        return (quantized, scales);
    }
}
