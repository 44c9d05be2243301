using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Training;

/// <summary>
/// O-LoRA's penalty (Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual Learning"):
/// λ·Σ_layers Σ_old ‖A_old A_newᵀ‖²_F, zero when the new adapter's input subspace (rows of A_new, [r, in]) is orthogonal
/// to every earlier adapter's on the same layer. The paper writes A as [in, r], hence its A_oldᵀ A_new.
/// </summary>
internal sealed class OrthogonalSubspace : ITrainingPenalty
{
    private readonly IReadOnlyList<(Parameter New, Tensor[] Old)> layers;
    private readonly double strength;

    /// <param name="layers">Per adapted layer: the new adapter's A and the earlier adapters' A's (copies; this penalty disposes them).</param>
    /// <param name="strength">λ.</param>
    public OrthogonalSubspace(IReadOnlyList<(Parameter New, Tensor[] Old)> layers, double strength)
    {
        this.layers = layers;
        this.strength = strength;
    }

    public Tensor Loss()
    {
        Tensor? sum = null;
        foreach (var (a, olds) in layers)
            foreach (var old in olds)
            {
                Tensor term = old.matmul(a.t()).square().sum();   // [r_old, r_new]
                sum = sum is null ? term : sum.add(term);
            }
        return (sum ?? tensor(0f)).mul(strength);
    }

    public void Dispose()
    {
        foreach (var (_, olds) in layers)
            foreach (var old in olds) old.Dispose();
    }
}
