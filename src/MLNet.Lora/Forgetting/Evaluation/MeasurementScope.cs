using MLNet.Lora.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Puts a model into the state measurements need and restores it afterwards: eval mode (no dropout), adapters unmerged
/// (a merged layer computes with a detached copy, through which no gradient reaches the base weight or the adapter),
/// and, on request, <c>requires_grad</c> on parameters that are frozen for training.
/// </summary>
internal sealed class MeasurementScope : IDisposable
{
    private readonly nn.Module model;
    private readonly bool wasTraining;
    private readonly List<LoraLinear> remerge = [];
    private readonly List<(Parameter Parameter, bool RequiresGrad)> flags = [];
    private bool disposed;

    /// <param name="model">The model to measure.</param>
    /// <param name="unmerge">Unmerge merged adapters: needed for gradients, not for forward passes (a merged layer computes the same outputs).</param>
    public MeasurementScope(nn.Module model, bool unmerge = true)
    {
        this.model = model;
        wasTraining = model.training;
        model.eval();
        if (!unmerge) return;
        foreach (var (_, layer) in LoraInjector.FindLoraLayers(model))
        {
            if (!layer.IsMerged) continue;
            layer.Unmerge();
            remerge.Add(layer);
        }
    }

    /// <summary>Makes <paramref name="parameters"/> require grad until the scope ends (what torch.autograd.grad needs).</summary>
    public void RequireGrad(IEnumerable<Parameter> parameters)
    {
        foreach (var p in parameters)
        {
            flags.Add((p, p.requires_grad));
            if (!p.requires_grad) p.requires_grad = true;
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        // In reverse, so that a parameter listed twice ends with its original flag.
        for (int i = flags.Count - 1; i >= 0; i--) flags[i].Parameter.requires_grad = flags[i].RequiresGrad;
        foreach (var layer in remerge) layer.Merge();
        if (wasTraining) model.train();
    }
}
