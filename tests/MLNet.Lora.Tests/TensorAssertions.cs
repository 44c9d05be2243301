using static TorchSharp.torch;

namespace MLNet.Lora.Tests;

internal static class TensorAssert
{
    /// <summary>Same shape and every element bit-identical.</summary>
    public static bool Identical(this Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    /// <summary>Largest absolute difference.</summary>
    public static double MaxAbsDiff(this Tensor a, Tensor b) => (a - b).abs().max().to(float64).item<double>();
}
