using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Adapters;

/// <summary>
/// A linear layer with LoRA adapters: y = W x + b + scaling · B A dropout(x). It wraps the layer it adapts
/// (<c>base_layer</c>) and holds any number of adapters by name (<c>lora_A.{name}</c>, <c>lora_B.{name}</c>,
/// as in PEFT); one of them, or none, is active. B starts at zero, so a fresh adapter changes nothing.
/// </summary>
/// <remarks>
/// <see cref="Merge"/> folds the active adapter into a copy of W for inference (one matmul, no extra latency) and
/// <see cref="Unmerge"/> drops that copy; the base weights themselves never change. Merging is always explicit.
/// </remarks>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Linear base_layer;
    private readonly AdapterFactors lora_A = new();
    private readonly AdapterFactors lora_B = new();
    private readonly Dictionary<string, (double Scaling, double Dropout)> settings = new();
    private Tensor? mergedWeight;

    /// <summary>Wraps <paramref name="baseLayer"/>; add adapters with <see cref="AddAdapter"/>.</summary>
    public LoraLinear(Linear baseLayer) : base(nameof(LoraLinear))
    {
        base_layer = baseLayer ?? throw new ArgumentNullException(nameof(baseLayer));
        RegisterComponents();
    }

    /// <summary>The wrapped layer.</summary>
    public Linear BaseLayer => base_layer;

    /// <summary>Input width of the layer.</summary>
    public long InFeatures => base_layer.weight!.shape[1];

    /// <summary>Output width of the layer.</summary>
    public long OutFeatures => base_layer.weight!.shape[0];

    /// <summary>Names of the adapters held.</summary>
    public IReadOnlyCollection<string> AdapterNames => settings.Keys;

    /// <summary>The adapter used in <see cref="forward"/>, or null for the bare base layer.</summary>
    public string? ActiveAdapter { get; private set; }

    /// <summary>Whether an adapter is merged into the inference weights.</summary>
    public bool IsMerged => mergedWeight is not null;

    /// <summary>
    /// Adds an adapter (A: Kaiming-uniform, B: zeros) and makes it active. Its rank and scaling are <paramref name="config"/>'s
    /// for the layer at <paramref name="modulePath"/> (see <see cref="LoraConfig.RankFor"/>), or its defaults when no path is given.
    /// </summary>
    public void AddAdapter(string name, LoraConfig config, string? modulePath = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(config);
        if (settings.ContainsKey(name)) throw new ArgumentException($"This layer already has an adapter named '{name}'.", nameof(name));
        int rank = modulePath is null ? config.Rank : config.RankFor(modulePath);
        double scaling = modulePath is null ? config.Scaling : config.ScalingFor(modulePath);
        long maxRank = Math.Min(InFeatures, OutFeatures);
        if (rank > maxRank)
            throw new ArgumentOutOfRangeException(nameof(config), rank,
                $"LoRA {nameof(LoraConfig.Rank)} {rank} exceeds this layer's smaller dimension ({InFeatures} in, {OutFeatures} out): a rank above {maxRank} adds parameters but no expressiveness.");
        RequireUnmerged();

        var device = base_layer.weight!.device;
        var dtype = base_layer.weight.dtype;
        var a = nn.Linear(InFeatures, rank, hasBias: false, device: device, dtype: dtype);
        var b = nn.Linear(rank, OutFeatures, hasBias: false, device: device, dtype: dtype);
        using (no_grad())
        {
            // As loralib and PEFT: A like a default nn.Linear, B zero so that B·A = 0 at the start.
            nn.init.kaiming_uniform_(a.weight!, Math.Sqrt(5));
            nn.init.zeros_(b.weight!);
        }
        lora_A.Add(name, a);
        lora_B.Add(name, b);
        settings[name] = (scaling, config.Dropout);
        ActiveAdapter = name;
    }

    /// <summary>Removes an adapter and disposes its weights.</summary>
    public void DeleteAdapter(string name)
    {
        RequireUnmerged();
        if (!settings.Remove(name)) throw new KeyNotFoundException($"No adapter named '{name}'.");
        lora_A.Remove(name);
        lora_B.Remove(name);
        if (ActiveAdapter == name) ActiveAdapter = null;
    }

    /// <summary>Makes <paramref name="name"/> the adapter in use, or none when null.</summary>
    public void SetActiveAdapter(string? name)
    {
        if (name is not null && !settings.ContainsKey(name)) throw new KeyNotFoundException($"No adapter named '{name}'.");
        RequireUnmerged();
        ActiveAdapter = name;
    }

    /// <summary>The factor A of adapter <paramref name="name"/>, [rank, in].</summary>
    public Parameter LoraA(string name) => lora_A[name].weight!;

    /// <summary>The factor B of adapter <paramref name="name"/>, [out, rank].</summary>
    public Parameter LoraB(string name) => lora_B[name].weight!;

    /// <summary>The factor applied to B·A by adapter <paramref name="name"/>.</summary>
    public double Scaling(string name) => settings.TryGetValue(name, out var s) ? s.Scaling : throw new KeyNotFoundException($"No adapter named '{name}'.");

    /// <summary>The adapter's update to the weight: ΔW = scaling · B·A, [out, in]. Merging is W + ΔW.</summary>
    public Tensor DeltaWeight(string name)
    {
        return LoraB(name).matmul(LoraA(name)).mul(Scaling(name));
    }

    /// <summary>
    /// Folds the active adapter into a copy of the base weight, W' = W + ΔW, used by <see cref="forward"/> until
    /// <see cref="Unmerge"/>. Refuses a non-finite result.
    /// </summary>
    public void Merge()
    {
        if (IsMerged || ActiveAdapter is null) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor merged = base_layer.weight!.add(DeltaWeight(ActiveAdapter));
        if (!merged.isfinite().all().item<bool>())
            throw new InvalidOperationException($"Merging adapter '{ActiveAdapter}' gives non-finite weights; the adapter has diverged.");
        // The layer owns the merged copy (Unmerge disposes it): detach it so that no caller's dispose scope frees it.
        mergedWeight = merged.DetachFromDisposeScope();
    }

    /// <summary>Drops the merged copy; <see cref="forward"/> computes the adapter's path again.</summary>
    public void Unmerge()
    {
        mergedWeight?.Dispose();
        mergedWeight = null;
    }

    /// <summary>
    /// y = W x + b + scaling · B A dropout(x), or W' x + b when merged; while an <see cref="AdapterRouting"/> is in
    /// effect on the thread, each row gets its own adapter's update instead.
    /// </summary>
    public override Tensor forward(Tensor input)
    {
        if (AdapterRouting.Current is { } routing) return routing.Apply(this, input, base_layer.forward(input));
        if (mergedWeight is not null) return F.linear(input, mergedWeight, base_layer.bias);
        Tensor result = base_layer.forward(input);
        if (ActiveAdapter is not { } name) return result;

        var (scaling, dropout) = settings[name];
        Tensor x = Encoders.FastDropout.Apply(input, dropout, training);
        Tensor update = lora_B[name].forward(lora_A[name].forward(x));
        // In place: autograd does not keep the base layer's output, and this saves a [batch, seq, out] allocation.
        return result.add_(update, alpha: scaling);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) Unmerge();
        base.Dispose(disposing);
    }

    private void RequireUnmerged()
    {
        if (IsMerged) throw new InvalidOperationException("Unmerge the adapter before changing adapters.");
    }

    /// <summary>A container whose children are the adapters' factors, keyed by adapter name.</summary>
    private sealed class AdapterFactors : nn.Module
    {
        private readonly Dictionary<string, Linear> byName = new();

        public AdapterFactors() : base(nameof(AdapterFactors)) { }

        public Linear this[string name] => byName[name];

        public void Add(string name, Linear factor)
        {
            byName.Add(name, factor);
            register_module(name, factor);
        }

        public void Remove(string name)
        {
            byName.Remove(name, out var factor);
            register_module(name, null!);
            factor?.Dispose();
        }
    }
}
