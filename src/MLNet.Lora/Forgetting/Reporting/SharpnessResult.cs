namespace MLNet.Lora.Forgetting;

/// <summary>Curvature of one task's loss around one model's weights.</summary>
public sealed record SharpnessResult
{
    /// <summary>The task whose loss was measured.</summary>
    public required string Task { get; init; }

    /// <summary>The model measured.</summary>
    public required string Model { get; init; }

    /// <summary>Which parameters span the Hessian: "weight matrices" (every query … output matrix), "adapter &lt;name&gt;", or "trainable".</summary>
    public required string ParameterSet { get; init; }

    /// <summary>Number of scalar parameters in <see cref="ParameterSet"/>.</summary>
    public long ParameterCount { get; init; }

    /// <summary>Examples in the fixed batch the loss was computed on.</summary>
    public int Examples { get; init; }

    /// <summary>Eigenvalue of largest magnitude of the loss Hessian, by power iteration on Hessian-vector products (Pearlmutter 1994).</summary>
    public double TopHessianEigenvalue { get; init; }

    /// <summary>L(w + ρ g/‖g‖) − L(w) (Foret et al. 2021, SAM).</summary>
    public double SamSharpness { get; init; }

    /// <summary>The SAM radius ρ.</summary>
    public double Rho { get; init; }

    /// <summary>Hessian-vector products allowed to the power iteration.</summary>
    public int PowerIterations { get; init; }
}
