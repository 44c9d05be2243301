using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Curvature of a loss around the current parameters: the Hessian's dominant eigenvalue and the SAM sharpness.
/// Flatter minima are associated with less forgetting when training moves on.
/// </summary>
/// <remarks>
/// The loss closure is evaluated several times and must be deterministic: put the model in eval mode (no dropout)
/// and use a fixed batch, or the results measure noise. It must return a scalar (one-element) tensor that depends on
/// the parameters through differentiable operations. Parameters the loss does not use contribute zero curvature.
/// </remarks>
internal static class Sharpness
{
    /// <summary>
    /// The eigenvalue of largest magnitude of the loss Hessian with respect to <paramref name="parameters"/>, by power
    /// iteration on Hessian-vector products H·v = ∇(∇L · v) (double backpropagation, B. A. Pearlmutter, "Fast Exact
    /// Multiplication by the Hessian", Neural Computation 6(1), 1994).
    /// </summary>
    /// <param name="loss">Closure that computes the loss; called once.</param>
    /// <param name="parameters">Parameters that span the Hessian (for instance only the LoRA adapters); they must require grad.</param>
    /// <param name="iterations">Maximum number of Hessian-vector products, ≥ 1.</param>
    /// <param name="seed">Seed (≥ 0) of the random start vector, drawn on the CPU so results do not depend on the device.</param>
    /// <param name="tolerance">Stops once the estimate changes by less than this fraction of its magnitude between iterations; ≥ 0.</param>
    /// <returns>
    /// The Rayleigh quotient vᵀHv of the final unit vector v: the eigenvalue of largest magnitude (it may be negative)
    /// once converged. 0 when the Hessian is zero.
    /// </returns>
    /// <remarks>
    /// Uses <c>torch.autograd.grad</c>, so the parameters' <c>.grad</c> fields are neither filled nor changed, and the
    /// parameters themselves are not modified. Power iteration converges at the rate |λ₂/λ₁|; raise
    /// <paramref name="iterations"/> when the top two eigenvalues are close in magnitude.
    /// </remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">
    /// The parameter list is empty, holds null, or a parameter does not require grad; or the loss is not a scalar or has no autograd history.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="iterations"/> &lt; 1, <paramref name="seed"/> &lt; 0, or <paramref name="tolerance"/> is negative, infinite or NaN.</exception>
    public static double TopHessianEigenvalue(
        Func<Tensor> loss, IReadOnlyList<Parameter> parameters, int iterations = 20, int seed = 0, double tolerance = 1e-4)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var ps = RequireParameters(parameters);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(seed);
        if (!(tolerance >= 0) || double.IsInfinity(tolerance))
            throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "The tolerance must be a finite value ≥ 0.");

        using var scope = torch.NewDisposeScope();
        using var gradMode = torch.enable_grad(); // the caller may be inside no_grad, e.g. an evaluation loop
        var value = EvaluateScalar(loss, differentiable: true);
        // create_graph keeps the gradient differentiable, so each H·v is one more backward pass through it.
        var grads = ZerosForUnused(torch.autograd.grad([value], ps, retain_graph: true, create_graph: true, allow_unused: true), ps);

        var v = RandomUnitDirection(ps, seed);
        double eigenvalue = 0;
        for (int it = 0; it < iterations; it++)
        {
            double rayleigh, hvNorm;
            Tensor[]? next = null;
            using (var step = torch.NewDisposeScope())
            {
                var gv = Sum(grads.Zip(v, (g, d) => (g * d).sum()));
                if (!gv.requires_grad) return 0; // the gradient does not depend on the parameters: H = 0
                var hv = ZerosForUnused(torch.autograd.grad([gv], ps, retain_graph: true, allow_unused: true), ps);
                // Divide by vᵀv: v was normalized in float64 but may be stored in a lower precision.
                rayleigh = Dot(v, hv) / Dot(v, v);
                hvNorm = Math.Sqrt(Dot(hv, hv));
                if (hvNorm > 0) next = hv.Select(h => (h / hvNorm).MoveToOuterDisposeScope()).ToArray();
            }

            bool converged = it > 0 && Math.Abs(rayleigh - eigenvalue) < tolerance * Math.Abs(rayleigh);
            eigenvalue = rayleigh;
            if (next is null) break; // H·v = 0: v lies in the null space, and vᵀHv = 0 is exact
            foreach (var d in v) d.Dispose(); // keep one direction alive, not one per iteration
            v = next;
            if (converged) break;
        }
        return eigenvalue;
    }

    /// <summary>
    /// SAM sharpness L(w + ρ g/‖g‖) − L(w), g = ∇L(w): the loss increase under the first-order worst-case perturbation
    /// of norm ρ (P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
    /// Generalization", ICLR 2021).
    /// </summary>
    /// <param name="loss">Closure that computes the loss; called twice.</param>
    /// <param name="parameters">Parameters to perturb (the norm ‖g‖ is over all of them together); they must require grad.</param>
    /// <param name="rho">Radius ρ of the perturbation, finite and &gt; 0.</param>
    /// <returns>The loss increase; 0 at a stationary point (g = 0), where the ascent direction is undefined.</returns>
    /// <remarks>
    /// The parameters are perturbed in place under <c>no_grad</c> and then restored bit-exactly from saved copies, even
    /// when the closure throws. The gradient comes from <c>torch.autograd.grad</c>, so <c>.grad</c> fields are not touched.
    /// Do not run other code that reads the parameters concurrently. Each loss carries the model's precision, so with
    /// float32 models a very small ρ yields a difference dominated by rounding.
    /// </remarks>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">
    /// The parameter list is empty, holds null, or a parameter does not require grad; or the loss is not a scalar or has no autograd history.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="rho"/> is not finite and &gt; 0.</exception>
    public static double SamSharpness(Func<Tensor> loss, IReadOnlyList<Parameter> parameters, double rho = 0.05)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var ps = RequireParameters(parameters);
        if (!(rho > 0) || double.IsInfinity(rho))
            throw new ArgumentOutOfRangeException(nameof(rho), rho, "rho must be a finite value > 0.");

        using var scope = torch.NewDisposeScope();
        Tensor[] grads;
        double before;
        using (torch.enable_grad())
        {
            var value = EvaluateScalar(loss, differentiable: true);
            before = ToDouble(value);
            grads = ZerosForUnused(torch.autograd.grad([value], ps, allow_unused: true), ps);
        }
        double gradNorm = Math.Sqrt(Dot(grads, grads));
        if (gradNorm == 0) return 0;

        var saved = ps.Select(p => p.detach().clone()).ToArray();
        double after;
        try
        {
            using var noGrad = torch.no_grad();
            for (int i = 0; i < ps.Length; i++) ps[i].add_(grads[i], alpha: rho / gradNorm);
            after = ToDouble(EvaluateScalar(loss, differentiable: false));
        }
        finally
        {
            using var noGrad = torch.no_grad();
            for (int i = 0; i < ps.Length; i++) ps[i].copy_(saved[i]);
        }
        return after - before;
    }

    private static Tensor[] RequireParameters(IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.Count == 0) throw new ArgumentException("Expected at least one parameter.", nameof(parameters));
        var ps = new Tensor[parameters.Count];
        for (int i = 0; i < ps.Length; i++)
        {
            var p = parameters[i] ?? throw new ArgumentException($"Parameter {i} is null.", nameof(parameters));
            if (!p.requires_grad) throw new ArgumentException($"Parameter {i} does not require grad.", nameof(parameters));
            ps[i] = p;
        }
        if (ps.All(p => p.numel() == 0)) throw new ArgumentException("The parameters hold no elements.", nameof(parameters));
        return ps;
    }

    private static Tensor EvaluateScalar(Func<Tensor> loss, bool differentiable)
    {
        var value = loss() ?? throw new ArgumentException("The loss closure returned null.", nameof(loss));
        if (value.numel() != 1) throw new ArgumentException($"The loss must be a scalar; got shape [{string.Join(", ", value.shape)}].", nameof(loss));
        // A loss without autograd history is almost always a closure that detaches or runs under no_grad itself.
        if (differentiable && !value.requires_grad)
            throw new ArgumentException("The loss has no autograd history: it must be computed from the parameters with grad enabled.", nameof(loss));
        return value.reshape([]);
    }

    // allow_unused yields undefined tensors for parameters the output does not depend on; their derivative is zero.
    private static Tensor[] ZerosForUnused(IList<Tensor> results, Tensor[] ps) =>
        results.Select((r, i) => r.IsInvalid ? torch.zeros_like(ps[i]) : r).ToArray();

    private static Tensor[] RandomUnitDirection(Tensor[] ps, int seed)
    {
        using var generator = new Generator((ulong)seed, torch.CPU);
        var raw = ps.Select(p => torch.randn(p.shape, ScalarType.Float64, torch.CPU, generator: generator)).ToArray();
        double norm = Math.Sqrt(Dot(raw, raw));
        return raw.Select((r, i) => (r / norm).to(ps[i].dtype, ps[i].device)).ToArray();
    }

    private static Tensor Sum(IEnumerable<Tensor> terms) => terms.Aggregate((acc, t) => acc + t);

    /// <summary>Σ_i a_i·b_i over all tensors, accumulated in float64 with a single device-to-host transfer.</summary>
    private static double Dot(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor? total = null;
        for (int i = 0; i < a.Count; i++)
        {
            var term = a[i].detach().to(ScalarType.Float64).flatten().dot(b[i].detach().to(ScalarType.Float64).flatten());
            total = total is null ? term : total + term.to(total.device);
        }
        return total!.item<double>();
    }

    private static double ToDouble(Tensor scalar)
    {
        using var d = scalar.detach().to(ScalarType.Float64);
        return d.item<double>();
    }
}
