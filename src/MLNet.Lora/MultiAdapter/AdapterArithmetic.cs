using static TorchSharp.torch;

namespace MLNet.Lora.MultiAdapter;

/// <summary>The tensor arithmetic of <see cref="LoraAdapterSet.Combine"/>, on one layer's updates.</summary>
internal static class AdapterArithmetic
{
    /// <summary>The best rank-<paramref name="rank"/> factors of <paramref name="delta"/> [out, in] by SVD: B = U·S [out, r], A = Vᴴ [r, in] (as PEFT's svd combination).</summary>
    public static (Tensor A, Tensor B) Factor(Tensor delta, int rank)
    {
        var (u, s, vh) = linalg.svd(delta, fullMatrices: false);
        int r = (int)Math.Min(rank, s.shape[0]);
        Tensor b = u[.., ..r].mul(s[..r].unsqueeze(0));
        Tensor a = vh[..r, ..];
        return (a, b);
    }

    /// <summary>
    /// TIES-merging of task vectors (Yadav et al. 2023, as PEFT's <c>ties</c>): keep each vector's
    /// <paramref name="density"/> fraction of largest-magnitude entries, weight it, elect each entry's sign as the sign of
    /// the weighted sum, and average the entries that agree with it (zero where none does).
    /// </summary>
    public static Tensor Ties(IReadOnlyList<Tensor> deltas, IReadOnlyList<double> weights, double density)
    {
        var weighted = deltas.Select((d, i) => Trim(d, density).mul(weights[i])).ToArray();
        Tensor stacked = stack(weighted);                                 // [parts, ...]
        Tensor elected = stacked.sum(dim: 0).sign();
        Tensor agree = stacked.sign().eq(elected.unsqueeze(0)).logical_and(stacked.ne(0)).to(stacked.dtype);
        return stacked.mul(agree).sum(dim: 0).div(agree.sum(dim: 0).clamp_min(1));
    }

    /// <summary><paramref name="delta"/> with all but its ⌈density·n⌉ largest-magnitude entries set to zero.</summary>
    public static Tensor Trim(Tensor delta, double density)
    {
        long n = delta.numel();
        long keep = Math.Clamp((long)Math.Ceiling(density * n), 1, n);
        if (keep == n) return delta.clone();
        Tensor flat = delta.flatten();
        var (_, indices) = flat.abs().topk((int)keep);
        Tensor mask = zeros_like(flat).index_fill_(0, indices, 1);
        return flat.mul(mask).view(delta.shape);
    }
}
