using System.Text.RegularExpressions;
using MLNet.Lora.Adapters;
using MLNet.Lora.MultiAdapter;
using static TorchSharp.torch;

namespace MLNet.Lora;

public sealed partial class LoraAdapterSet
{
    /// <summary>
    /// Adds <paramref name="newName"/>, an adapter combined from <paramref name="parts"/> layer by layer (see
    /// <see cref="AdapterCombination"/>); the parts must share their label values (in any order) and pooling, and their
    /// heads are combined with the same weights, in the first part's label order. Score the result on every task it came from, for example with the forgetting
    /// evaluator. A combined adapter has no file, so it is never evicted.
    /// </summary>
    /// <param name="newName">The combined adapter's name.</param>
    /// <param name="parts">Adapters of the set and their weights.</param>
    /// <param name="method">How to combine them.</param>
    /// <param name="rank">For <see cref="AdapterCombination.Linear"/> and <see cref="AdapterCombination.Ties"/>: the rank
    /// to factor each layer's update to; default, and at most, the sum of the parts' ranks there (which, for Linear, is
    /// exact: a larger rank adds nothing, so it is capped).</param>
    /// <param name="density">For <see cref="AdapterCombination.Ties"/>: the fraction of each update's entries kept when trimming.</param>
    /// <exception cref="ArgumentException">The name is taken, no parts are given, a weight is not finite, or the parts'
    /// label values or pooling differ.</exception>
    /// <exception cref="KeyNotFoundException">A part names no adapter of the set.</exception>
    public void Combine(string newName, IReadOnlyList<(string Adapter, double Weight)> parts, AdapterCombination method, int? rank = null, double density = 0.2)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(newName);
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new ArgumentException("Give at least one adapter to combine.", nameof(parts));
        if (parts.FirstOrDefault(p => !double.IsFinite(p.Weight)) is { Adapter: not null } bad)
            throw new ArgumentException($"The weight of '{bad.Adapter}' is {bad.Weight}; weights must be finite numbers.", nameof(parts));
        if (rank is <= 0) throw new ArgumentOutOfRangeException(nameof(rank), rank, "The rank must be positive.");
        if (density is <= 0 or > 1 || double.IsNaN(density)) throw new ArgumentOutOfRangeException(nameof(density), density, "The density must be in (0, 1].");
        if (!Enum.IsDefined(method)) throw new ArgumentOutOfRangeException(nameof(method), method, "Unknown combination method.");
        CheckNameFree(newName);
        var entries = parts.Select(p => Find(p.Adapter) ?? throw UnknownAdapter(p.Adapter, "Cannot combine: ")).ToArray();
        var first = entries[0];
        foreach (var entry in entries.Skip(1))
        {
            if (entry.Labels.Length != first.Labels.Length || !entry.Labels.ToHashSet().SetEquals(first.Labels))
                throw new ArgumentException($"Adapters '{first.Name}' (labels {string.Join(", ", first.Labels)}) and '{entry.Name}' (labels {string.Join(", ", entry.Labels)}) " +
                                            "have different label sets, so their heads cannot be combined; combine adapters trained on one label set.", nameof(parts));
            if (entry.Settings.Pooling != first.Settings.Pooling)
                throw new ArgumentException($"Adapters '{first.Name}' ({first.Settings.Pooling} pooling) and '{entry.Name}' ({entry.Settings.Pooling} pooling) pool differently; their heads read different features.", nameof(parts));
        }

        var distinct = entries.Distinct().ToList();
        Acquire(distinct);
        AdapterWeights combined;
        try
        {
            networkLock.EnterReadLock();
            try
            {
                combined = CombineLoaded(entries, parts.Select(p => p.Weight).ToArray(), method, rank, density);
            }
            finally
            {
                networkLock.ExitReadLock();
            }
        }
        finally
        {
            ReleasePins(distinct);
        }
        using (combined) AddLoaded(newName, null, combined);
    }

    /// <summary>Adapter <paramref name="name"/>'s ΔW = scaling·B·A by layer path (CPU copies; it is loaded first if evicted).</summary>
    internal Dictionary<string, Tensor> DeltaWeights(string name)
    {
        var entry = Find(name) ?? throw UnknownAdapter(name, "");
        Acquire([entry]);
        try
        {
            networkLock.EnterReadLock();
            try
            {
                using var noGrad = no_grad();
                return LoraInjector.FindLoraLayers(network).Where(l => l.Layer.AdapterNames.Contains(entry.Key))
                    .ToDictionary(l => l.Path, l => l.Layer.DeltaWeight(entry.Key).cpu(), StringComparer.Ordinal);
            }
            finally
            {
                networkLock.ExitReadLock();
            }
        }
        finally
        {
            ReleasePins([entry]);
        }
    }

    /// <summary>The combined factors and head, from the loaded, pinned <paramref name="entries"/>. Call under the network read lock.</summary>
    private AdapterWeights CombineLoaded(AdapterEntry[] entries, double[] weights, AdapterCombination method, int? rank, double density)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var factors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (path, layer) in LoraInjector.FindLoraLayers(network))
        {
            var holders = Enumerable.Range(0, entries.Length).Where(i => layer.AdapterNames.Contains(entries[i].Key)).ToList();
            if (holders.Count == 0) continue;
            int rankSum = holders.Sum(i => (int)layer.LoraA(entries[i].Key).shape[0]);
            Tensor a, b;
            if (method == AdapterCombination.Concatenate)
            {
                a = cat(holders.Select(i => (Tensor)layer.LoraA(entries[i].Key)).ToList(), 0);
                b = cat(holders.Select(i => layer.LoraB(entries[i].Key).mul(weights[i] * layer.Scaling(entries[i].Key))).ToList(), 1);
            }
            else
            {
                var deltas = holders.Select(i => layer.DeltaWeight(entries[i].Key)).ToList();
                var partWeights = holders.Select(i => weights[i]).ToList();
                Tensor delta = method == AdapterCombination.Linear
                    ? deltas.Select((d, k) => d.mul(partWeights[k])).Aggregate((x, y) => x.add(y))
                    : AdapterArithmetic.Ties(deltas, partWeights, density);
                (a, b) = AdapterArithmetic.Factor(delta.to(float32), Math.Min(rank ?? rankSum, rankSum));
            }
            factors[AdapterKeys.A(path, "", AdapterKeyStyle.Peft)] = a.contiguous().cpu().clone().DetachFromDisposeScope();
            factors[AdapterKeys.B(path, "", AdapterKeyStyle.Peft)] = b.contiguous().cpu().clone().DetachFromDisposeScope();
            ranks[path] = (int)a.shape[0];
        }
        // Heads in the first part's label order (ML.NET numbers labels in order of appearance, so fits differ).
        Tensor InFirstOrder(AdapterEntry entry, Tensor head) => head.index_select(0,
            tensor(entries[0].Labels.Select(label => (long)Array.IndexOf(entry.Labels, label)).ToArray(), device: head.device));
        Tensor headWeight = entries.Select((e, i) => InFirstOrder(e, e.Head!.weight!).mul(weights[i])).Aggregate((x, y) => x.add(y)).cpu().clone().DetachFromDisposeScope();
        Tensor headBias = entries.Select((e, i) => InFirstOrder(e, e.Head!.bias!).mul(weights[i])).Aggregate((x, y) => x.add(y)).cpu().clone().DetachFromDisposeScope();

        // Each layer keeps its own rank, with alpha = rank so that the scaling is 1 (the weights are in the factors).
        var config = new LoraConfig
        {
            Rank = ranks.Values.Max(),
            Alpha = ranks.Values.Max(),
            Dropout = 0,
            TargetModules = entries.Select(e => e.Settings.Lora.TargetModules).Aggregate((x, y) => x | y),
            RankPattern = ranks.ToDictionary(r => Regex.Escape(r.Key), r => r.Value),
            AlphaPattern = ranks.ToDictionary(r => Regex.Escape(r.Key), r => (double)r.Value),
        };
        var first = entries[0].Settings;
        return new AdapterWeights(first with { Lora = config }, factors, headWeight, headBias);
    }
}
