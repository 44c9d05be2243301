using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// How far attention patterns moved: Jensen–Shannon divergence between attention distributions of two models
/// (for instance the base encoder and its fine-tuned version) on the same inputs.
/// </summary>
/// <remarks>
/// Definition: JS(P, Q) = ½ KL(P ‖ M) + ½ KL(Q ‖ M) with M = ½ (P + Q), in bits (log base 2), so 0 ≤ JS ≤ 1.
/// Reference: J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37(1), 1991.
/// </remarks>
internal static class AttentionDivergence
{
    /// <summary>
    /// Base-2 Jensen–Shannon divergence between the distributions that lie along the last dimension of
    /// <paramref name="p"/> and <paramref name="q"/>.
    /// </summary>
    /// <param name="p">Probabilities, shape [..., k]; each last-dimension slice is expected to be non-negative and sum to 1.</param>
    /// <param name="q">Probabilities of the same shape.</param>
    /// <returns>
    /// A float64 tensor of the leading shape [...], on <paramref name="p"/>'s device, without autograd history:
    /// 0 for identical distributions, 1 for disjoint supports. 0·log 0 is taken as exactly 0, so zeros never yield NaN.
    /// The tensor belongs to the caller's dispose scope.
    /// </returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The shapes differ, the tensors are 0-D, or a probability is negative.</exception>
    public static Tensor JensenShannon(Tensor p, Tensor q)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(q);
        if (p.dim() < 1) throw new ArgumentException("Expected at least one dimension (the distribution axis).", nameof(p));
        if (!p.shape.SequenceEqual(q.shape))
            throw new ArgumentException($"p and q must have the same shape; got [{string.Join(", ", p.shape)}] and [{string.Join(", ", q.shape)}].", nameof(q));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var pd = p.detach().to(ScalarType.Float64);
        var qd = q.detach().to(ScalarType.Float64, p.device);
        if (pd.lt(0).any().item<bool>()) throw new ArgumentException("p contains negative probabilities.", nameof(p));
        if (qd.lt(0).any().item<bool>()) throw new ArgumentException("q contains negative probabilities.", nameof(q));

        var m = (pd + qd) * 0.5;
        // xlogy(0, ·) is exactly 0, and m > 0 wherever p or q is, so no log 0 ever meets a nonzero weight.
        var klP = (torch.xlogy(pd, pd) - torch.xlogy(pd, m)).sum(-1);
        var klQ = (torch.xlogy(qd, qd) - torch.xlogy(qd, m)).sum(-1);
        // Rounding can push the result a few ulps outside [0, 1].
        var js = ((klP + klQ) * (0.5 / Math.Log(2.0))).clamp(0.0, 1.0);
        return js.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Mean Jensen–Shannon divergence per head between two attention maps, averaged over the query rows of real
    /// (non-pad) tokens across the whole batch.
    /// </summary>
    /// <param name="pAttn">Attention probabilities [batch, heads, seq, seq] (query × key); each key row sums to 1.</param>
    /// <param name="qAttn">Attention probabilities of the same shape from the other model.</param>
    /// <param name="attentionMask">[batch, seq], nonzero for a real token and 0 for padding; any dtype.</param>
    /// <returns>One value per head, each in [0, 1].</returns>
    /// <remarks>
    /// Only pad query rows are excluded; pad keys stay in the distributions, where they carry ~0 probability.
    /// Every real query row weighs the same, so a batch of long sequences counts more than one of short ones.
    /// Temporaries are float64 of the attention maps' size; pass one batch at a time when memory is tight.
    /// </remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">A shape does not match, or the mask marks no real token.</exception>
    public static double[] MeanPerHead(Tensor pAttn, Tensor qAttn, Tensor attentionMask)
    {
        ArgumentNullException.ThrowIfNull(pAttn);
        ArgumentNullException.ThrowIfNull(qAttn);
        ArgumentNullException.ThrowIfNull(attentionMask);
        if (pAttn.dim() != 4 || pAttn.shape[2] != pAttn.shape[3])
            throw new ArgumentException($"Expected attention [batch, heads, seq, seq]; got [{string.Join(", ", pAttn.shape)}].", nameof(pAttn));
        if (!qAttn.shape.SequenceEqual(pAttn.shape))
            throw new ArgumentException($"qAttn must have pAttn's shape [{string.Join(", ", pAttn.shape)}]; got [{string.Join(", ", qAttn.shape)}].", nameof(qAttn));
        if (attentionMask.dim() != 2 || attentionMask.shape[0] != pAttn.shape[0] || attentionMask.shape[1] != pAttn.shape[2])
            throw new ArgumentException($"Expected a mask [batch, seq] = [{pAttn.shape[0]}, {pAttn.shape[2]}]; got [{string.Join(", ", attentionMask.shape)}].", nameof(attentionMask));

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var weight = attentionMask.detach().ne(0).to(ScalarType.Float64, pAttn.device);
        double realRows = weight.sum().item<double>();
        if (realRows == 0) throw new ArgumentException("The attention mask marks no real token.", nameof(attentionMask));

        var js = JensenShannon(pAttn, qAttn);                                   // [batch, heads, seq]
        var perHead = (js * weight.unsqueeze(1)).sum([0L, 2L]) / realRows;       // [heads]
        return perHead.cpu().data<double>().ToArray();
    }

    /// <summary>Share of heads whose divergence is strictly above <paramref name="threshold"/>.</summary>
    /// <param name="perHead">Per-head values, for instance from <see cref="MeanPerHead"/>.</param>
    /// <param name="threshold">The cut-off; must not be NaN.</param>
    /// <returns>A fraction in [0, 1]. NaN entries never count as above.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="perHead"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="perHead"/> is empty or <paramref name="threshold"/> is NaN.</exception>
    public static double ShareAbove(double[] perHead, double threshold)
    {
        ArgumentNullException.ThrowIfNull(perHead);
        if (perHead.Length == 0) throw new ArgumentException("Expected at least one head.", nameof(perHead));
        if (double.IsNaN(threshold)) throw new ArgumentException("The threshold must not be NaN.", nameof(threshold));
        return (double)perHead.Count(v => v > threshold) / perHead.Length;
    }
}
