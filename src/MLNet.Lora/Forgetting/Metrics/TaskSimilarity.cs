using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Similarity of two tasks as one model sees them, from the model's features of each task's own examples.
/// </summary>
internal static class TaskSimilarity
{
    /// <summary>
    /// Linear CKA (Kornblith et al. 2019, eq. 5) between two tasks' representations <paramref name="a"/> [n_a, d] and
    /// <paramref name="b"/> [n_b, d] from the same model. The tasks have different examples, so rows cannot be paired as
    /// plain CKA needs; the feature dimensions can. With each task's rows centred on its own mean,
    /// similarity = ‖A Bᵀ‖²_F / (‖AᵀA‖_F ‖BᵀB‖_F), which is the cosine between the two tasks' feature covariance
    /// matrices: 1 when both tasks spread over the same directions in the same proportions, 0 when they use orthogonal
    /// feature subspaces.
    /// </summary>
    /// <param name="a">First task's features [n_a, d], n_a ≥ 2, finite.</param>
    /// <param name="b">Second task's features [n_b, d], n_b ≥ 2, the same d.</param>
    /// <returns>A value in [0, 1]; 0 when either task's features have no variance.</returns>
    /// <remarks>Computed in float64 without autograd. Invariant to the order of examples and to scaling either task's features.</remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">A shape is not [n, d], the widths differ, n &lt; 2, or a value is not finite.</exception>
    public static double RepresentationAlignment(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.dim() != 2) throw new ArgumentException($"Expected [n, d]; got [{string.Join(", ", a.shape)}].", nameof(a));
        if (b.dim() != 2) throw new ArgumentException($"Expected [n, d]; got [{string.Join(", ", b.shape)}].", nameof(b));
        if (a.shape[1] != b.shape[1]) throw new ArgumentException($"Both tasks need the same feature width; got {a.shape[1]} and {b.shape[1]}.", nameof(b));
        if (a.shape[0] < 2) throw new ArgumentException("Expected at least 2 examples.", nameof(a));
        if (b.shape[0] < 2) throw new ArgumentException("Expected at least 2 examples.", nameof(b));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var ad = a.detach().to(ScalarType.Float64);
        var bd = b.detach().to(ScalarType.Float64, a.device);
        if (!ad.isfinite().all().item<bool>()) throw new ArgumentException("a contains NaN or infinity.", nameof(a));
        if (!bd.isfinite().all().item<bool>()) throw new ArgumentException("b contains NaN or infinity.", nameof(b));
        var ac = ad - ad.mean([0], keepdim: true);
        var bc = bd - bd.mean([0], keepdim: true);
        // Covariances are d × d, whatever the example counts: this is the cheaper form when n > d.
        var ca = ac.T.matmul(ac);
        var cb = bc.T.matmul(bc);
        double cross = (ca * cb).sum().item<double>();
        double normA = ca.square().sum().sqrt().item<double>();
        double normB = cb.square().sum().sqrt().item<double>();
        if (normA == 0 || normB == 0) return 0;
        return Math.Clamp(cross / (normA * normB), 0.0, 1.0);
    }
}
