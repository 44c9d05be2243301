using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Adapters;

/// <summary>
/// Per-row adapter choice for one forward pass (inference only): which rows of the batch each adapter serves. While a
/// routing is in effect on a thread, every <see cref="LoraLinear"/> computes W·x once for the whole batch and adds each
/// adapter's scaling·B·A·x to its own rows only (gather, then <c>index_add_</c>, as Punica's SGMV does on GPUs); its
/// active adapter is ignored and nothing is merged. A routing of one adapter over the whole batch does exactly what the
/// active-adapter path does.
/// </summary>
/// <remarks>
/// Held per thread rather than on the layers, so that several threads can score different mixes through one network.
/// </remarks>
internal sealed class AdapterRouting
{
    [ThreadStatic] private static AdapterRouting? current;

    private readonly IReadOnlyList<(string Adapter, Tensor? Rows)> groups;

    /// <param name="groups">Adapter names (as the layers hold them) with the batch rows they serve ([n] int64), or null rows for the whole batch.</param>
    public AdapterRouting(IReadOnlyList<(string Adapter, Tensor? Rows)> groups) => this.groups = groups;

    /// <summary>The routing in effect on this thread, or null.</summary>
    public static AdapterRouting? Current => current;

    /// <summary>Puts this routing in effect on this thread until the result is disposed.</summary>
    public Scope Use()
    {
        if (current is not null) throw new InvalidOperationException("An adapter routing is already in effect on this thread.");
        current = this;
        return new Scope();
    }

    /// <summary>Ends the routing's effect.</summary>
    public readonly struct Scope : IDisposable
    {
        public void Dispose() => current = null;
    }

    /// <summary>
    /// <paramref name="layer"/>'s output for <paramref name="input"/>: <paramref name="baseOutput"/> (W·x + b, owned by
    /// the caller's pass and updated in place) plus each adapter's update on its rows. Adapters the layer does not hold
    /// (they target other modules) add nothing.
    /// </summary>
    public Tensor Apply(LoraLinear layer, Tensor input, Tensor baseOutput)
    {
        if (layer.IsMerged) throw new InvalidOperationException("A merged LoRA layer cannot route adapters per row; unmerge it first.");
        foreach (var (adapter, rows) in groups)
        {
            if (!layer.AdapterNames.Contains(adapter)) continue;
            double scaling = layer.Scaling(adapter);
            if (rows is null)
            {
                baseOutput.add_(F.linear(F.linear(input, layer.LoraA(adapter)), layer.LoraB(adapter)), alpha: scaling);
                continue;
            }
            using var x = input.index_select(0, rows);
            using var low = F.linear(x, layer.LoraA(adapter));
            using var update = F.linear(low, layer.LoraB(adapter));
            baseOutput.index_add_(0, rows, update, alpha: scaling);
        }
        return baseOutput;
    }
}
