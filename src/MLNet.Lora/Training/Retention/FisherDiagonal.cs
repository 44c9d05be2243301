using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Training;

/// <summary>
/// The diagonal of the empirical Fisher information, F_k = (1/N) Σ_n (∂ℓ_n/∂θ_k)², from per-example gradients of the
/// log-loss ℓ_n (each example its own backward pass: the square of a batch-mean gradient would not be the Fisher).
/// </summary>
internal static class FisherDiagonal
{
    /// <param name="parameters">The weights whose Fisher is estimated; they must require grad.</param>
    /// <param name="examples">How many examples.</param>
    /// <param name="exampleLoss">The loss of example n (a scalar), differentiable with respect to <paramref name="parameters"/>.</param>
    /// <param name="cancellationToken">Cancels between examples.</param>
    /// <returns>F shaped as each parameter (detached; the caller disposes).</returns>
    public static Tensor[] Estimate(IReadOnlyList<Parameter> parameters, int examples, Func<int, Tensor> exampleLoss, CancellationToken cancellationToken = default)
    {
        if (examples <= 0) throw new ArgumentOutOfRangeException(nameof(examples), examples, "The Fisher needs at least one example.");
        var sums = parameters.Select(p => zeros_like(p, requires_grad: false).DetachFromDisposeScope()).ToArray();
        var inputs = parameters.Select(p => (Tensor)p).ToList();
        for (int n = 0; n < examples; n++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var gradients = autograd.grad([exampleLoss(n)], inputs, allow_unused: true);
            using var noGrad = no_grad();
            for (int k = 0; k < sums.Length; k++)
                if (gradients[k] is { } g && !g.IsInvalid) sums[k].add_(g.square());
        }
        using (no_grad()) foreach (var s in sums) s.div_(examples);
        return sums;
    }
}
