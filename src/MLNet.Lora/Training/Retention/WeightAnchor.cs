using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Training;

/// <summary>A term added to a fine-tune's loss at every step.</summary>
internal interface ITrainingPenalty : IDisposable
{
    /// <summary>The penalty at the current weights, differentiable with respect to them.</summary>
    Tensor Loss();
}

/// <summary>
/// Holds weights near an anchor θ₀: (λ/2)·Σ_k w_k (θ_k − θ₀_k)². With w = 1 this is L2-SP (Li et al. 2018); with w the
/// diagonal Fisher information it is EWC (Kirkpatrick et al. 2017), the Fisher scaled to mean 1 over the held weights
/// so that one λ means the same total pull for both and EWC only redistributes it by importance (raw Fisher values
/// scale with the loss and the parameter count, which would make λ incomparable across models and modes). θ₀ is the
/// weights' value when the penalty is made.
/// </summary>
internal sealed class WeightAnchor : ITrainingPenalty
{
    private readonly IReadOnlyList<Parameter> parameters;
    private readonly Tensor[] anchor;
    private readonly Tensor[]? importance;
    private readonly double strength;

    /// <param name="parameters">The weights held (those that train).</param>
    /// <param name="strength">λ.</param>
    /// <param name="importance">Per-weight w (the Fisher diagonal), shaped as <paramref name="parameters"/>; null for L2-SP.</param>
    public WeightAnchor(IReadOnlyList<Parameter> parameters, double strength, Tensor[]? importance = null)
    {
        if (importance is not null && importance.Length != parameters.Count)
            throw new ArgumentException($"{importance.Length} importance tensors for {parameters.Count} parameters.", nameof(importance));
        this.parameters = parameters;
        this.strength = strength;
        using var noGrad = no_grad();
        if (importance is not null)
        {
            double mean;
            using (NewDisposeScope()) mean = importance.Sum(t => t.sum().item<float>()) / importance.Sum(t => t.numel());
            // All zero (no retention gradient reached these weights): nothing to weigh, so nothing is held.
            foreach (var t in importance) t.div_(mean > 0 ? mean : 1);
        }
        this.importance = importance;
        anchor = parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToArray();
    }

    public Tensor Loss()
    {
        Tensor? sum = null;
        for (int k = 0; k < parameters.Count; k++)
        {
            Tensor d = parameters[k].sub(anchor[k]);
            Tensor term = (importance is null ? d.square() : d.square().mul(importance[k])).sum();
            sum = sum is null ? term : sum.add(term);
        }
        return sum!.mul(strength / 2);
    }

    public void Dispose()
    {
        foreach (var t in anchor) t.Dispose();
        if (importance is not null) foreach (var t in importance) t.Dispose();
    }
}
