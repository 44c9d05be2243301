using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Compares two representations of the same examples (for instance the [CLS] embeddings of one evaluation set
/// before and after fine-tuning) by linear centered kernel alignment (CKA).
/// </summary>
/// <remarks>
/// Reference: S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity of Neural Network Representations Revisited",
/// ICML 2019, equation (5). Linear CKA is invariant to orthogonal transforms and isotropic scaling of either
/// representation, and to adding a constant vector to every row, but not to arbitrary invertible linear maps.
/// </remarks>
internal static class RepresentationSimilarity
{
    /// <summary>
    /// Linear CKA between <paramref name="x"/> [n, d1] and <paramref name="y"/> [n, d2], whose rows are the same n examples:
    /// with X and Y column-centered, CKA = ||YᵀX||²_F / (||XᵀX||_F · ||YᵀY||_F).
    /// </summary>
    /// <param name="x">First representation, [n, d1], n ≥ 2, finite values, any floating or integer dtype.</param>
    /// <param name="y">Second representation, [n, d2], the same n rows in the same order.</param>
    /// <returns>
    /// A value in [0, 1]; 1 means the representations match up to rotation, isotropic scaling and translation.
    /// Returns 0 when either input has zero variance (every row equal), where CKA is undefined (0/0).
    /// </returns>
    /// <remarks>Computed in float64 and without autograd; the inputs are not modified.</remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">A shape is not [n, d], the row counts differ, n &lt; 2, or a value is not finite.</exception>
    public static double LinearCka(Tensor x, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.dim() != 2) throw new ArgumentException($"Expected a 2-D tensor [n, d1]; got shape {ShapeText(x)}.", nameof(x));
        if (y.dim() != 2) throw new ArgumentException($"Expected a 2-D tensor [n, d2]; got shape {ShapeText(y)}.", nameof(y));
        if (y.shape[0] != x.shape[0])
            throw new ArgumentException($"x and y must hold the same examples: x has {x.shape[0]} rows, y has {y.shape[0]}.", nameof(y));
        if (x.shape[0] < 2) throw new ArgumentException($"CKA needs at least 2 examples; got {x.shape[0]}.", nameof(x));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var xd = x.detach().to(ScalarType.Float64);
        var yd = y.detach().to(ScalarType.Float64, x.device);
        if (!xd.isfinite().all().item<bool>()) throw new ArgumentException("x contains NaN or infinity.", nameof(x));
        if (!yd.isfinite().all().item<bool>()) throw new ArgumentException("y contains NaN or infinity.", nameof(y));

        // Decide zero variance exactly on the raw rows: after centering, rounding in the mean would leave ~1e-17
        // noise whose CKA is an arbitrary number rather than the documented 0.
        if (AllRowsEqual(xd) || AllRowsEqual(yd)) return 0;

        var xc = xd - xd.mean([0], keepdim: true);
        var yc = yd - yd.mean([0], keepdim: true);
        double cross = yc.T.matmul(xc).square().sum().item<double>();
        double normX = xc.T.matmul(xc).square().sum().sqrt().item<double>();
        double normY = yc.T.matmul(yc).square().sum().sqrt().item<double>();
        if (normX == 0 || normY == 0) return 0; // underflow of a tiny but nonzero variance
        // Cauchy–Schwarz bounds the ratio by 1; clamping only removes last-bit rounding.
        return Math.Clamp(cross / (normX * normY), 0.0, 1.0);
    }

    /// <summary>Representation drift: 1 − <see cref="LinearCka"/>(x, y), 0 for matching representations.</summary>
    /// <param name="x">First representation, [n, d1].</param>
    /// <param name="y">Second representation, [n, d2].</param>
    /// <returns>A value in [0, 1]. Note that it is 1 when either input has zero variance (CKA is then reported as 0).</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">See <see cref="LinearCka"/>.</exception>
    public static double RepresentationDrift(Tensor x, Tensor y) => 1.0 - LinearCka(x, y);

    private static bool AllRowsEqual(Tensor t) => t.eq(t[0]).all().item<bool>();

    private static string ShapeText(Tensor t) => $"[{string.Join(", ", t.shape)}]";
}
