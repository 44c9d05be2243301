using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>Measures the curvature of a task loss around a model's current weights.</summary>
internal static class SharpnessMeter
{
    /// <summary>
    /// Top Hessian eigenvalue and SAM sharpness of <paramref name="loss"/> over <paramref name="parameters"/>, with the
    /// encoder in eval mode and its adapters unmerged; <c>requires_grad</c> is turned on for the measurement only.
    /// </summary>
    public static SharpnessResult Measure(nn.Module encoder, Func<Tensor> loss, IReadOnlyList<Parameter> parameters,
        string task, string model, string parameterSet, int examples, int iterations, double rho, int seed)
    {
        using var measuring = new MeasurementScope(encoder);
        measuring.RequireGrad(parameters);
        double top = Sharpness.TopHessianEigenvalue(loss, parameters, iterations, seed);
        double sam = Sharpness.SamSharpness(loss, parameters, rho);
        return new SharpnessResult
        {
            Task = task,
            Model = model,
            ParameterSet = parameterSet,
            ParameterCount = parameters.Sum(p => p.numel()),
            Examples = examples,
            TopHessianEigenvalue = top,
            SamSharpness = sam,
            Rho = rho,
            PowerIterations = iterations,
        };
    }
}
