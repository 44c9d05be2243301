using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>Gradients of task losses with respect to an encoder's weight matrices and adapters, batch by batch.</summary>
internal static class GradientMeter
{
    /// <summary>
    /// For each batch b, the gradients of <paramref name="oldLoss"/>(b) and <paramref name="newLoss"/>(b) with respect to
    /// every module's tensors; records their cosine per (batch, module) under the module's kind, once for the weight
    /// matrices and once for the adapters. Also returns the cosine between the two mean gradients over the matrices.
    /// </summary>
    /// <remarks>
    /// A pair where either gradient is exactly zero (a saturated read-out, or a module the loss does not reach) has no
    /// angle; it is skipped and counted rather than recorded as cosine 0, which would pass for "no conflict".
    /// </remarks>
    public static (GradientConflictTally Matrices, GradientConflictTally Adapters, double MeanGradientCosine, int Skipped) Compare(
        nn.Module encoder, Func<int, Tensor> oldLoss, Func<int, Tensor> newLoss, int batches,
        IReadOnlyList<WeightModule> matrices, IReadOnlyList<WeightModule> adapters, CancellationToken cancellationToken)
    {
        var matrixTally = new GradientConflictTally();
        var adapterTally = new GradientConflictTally();
        var modules = matrices.Concat(adapters).ToList();
        var parameters = modules.SelectMany(m => m.Parameters).ToArray();
        int matrixTensors = matrices.Sum(m => m.Parameters.Count);
        int skipped = 0;

        using var outer = NewDisposeScope();
        using var measuring = new MeasurementScope(encoder);
        measuring.RequireGrad(parameters);
        using var grad = enable_grad();
        var sumOld = parameters.Take(matrixTensors).Select(p => zeros_like(p, dtype: float32)).ToArray();
        var sumNew = parameters.Take(matrixTensors).Select(p => zeros_like(p, dtype: float32)).ToArray();
        for (int b = 0; b < batches; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var gOld = Gradient(oldLoss(b), parameters);
            var gNew = Gradient(newLoss(b), parameters);
            int at = 0;
            foreach (var module in modules)
            {
                int n = module.Parameters.Count;
                var a = gOld[at..(at + n)];
                var c = gNew[at..(at + n)];
                if (IsZero(a) || IsZero(c)) skipped++;
                else (at < matrixTensors ? matrixTally : adapterTally).Record(EncoderWeights.KindName(module.Kind), GradientConflict.Cosine(a, c));
                at += n;
            }
            using (no_grad())
            {
                for (int i = 0; i < matrixTensors; i++)
                {
                    sumOld[i].add_(gOld[i].to(float32));
                    sumNew[i].add_(gNew[i].to(float32));
                }
            }
        }
        return (matrixTally, adapterTally, CosineOrNaN(sumOld, sumNew), skipped);
    }

    /// <summary>The mean over <paramref name="batches"/> batches of the gradient of <paramref name="loss"/> with respect to the modules' tensors (float32, outer scope).</summary>
    public static Tensor[] MeanGradient(nn.Module encoder, Func<int, Tensor> loss, int batches, IReadOnlyList<WeightModule> modules, CancellationToken cancellationToken)
    {
        var parameters = modules.SelectMany(m => m.Parameters).ToArray();
        using var measuring = new MeasurementScope(encoder);
        measuring.RequireGrad(parameters);
        using var grad = enable_grad();
        var sum = parameters.Select(p => zeros_like(p, dtype: float32)).ToArray();
        for (int b = 0; b < batches; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var g = Gradient(loss(b), parameters);
            using (no_grad())
                for (int i = 0; i < sum.Length; i++) sum[i].add_(g[i].to(float32));
        }
        using (no_grad())
            foreach (var s in sum) s.div_(batches);
        return sum;
    }

    /// <summary>The cosine of two gradients, or NaN when either is empty or exactly zero (no direction, so no angle).</summary>
    public static double CosineOrNaN(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b) =>
        a.Count == 0 || IsZero(a) || IsZero(b) ? double.NaN : GradientConflict.Cosine(a, b);

    private static bool IsZero(IReadOnlyList<Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return tensors.All(t => !t.ne(0).any().item<bool>());
    }

    /// <summary>d loss / d parameters; zeros for parameters the loss does not use.</summary>
    public static Tensor[] Gradient(Tensor loss, Tensor[] parameters)
    {
        var grads = torch.autograd.grad([loss], parameters, allow_unused: true);
        return grads.Select((g, i) => g.IsInvalid ? zeros_like(parameters[i]) : g).ToArray();
    }
}
