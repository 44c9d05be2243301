using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using MLNet.Lora.Encoders;
using static TorchSharp.torch;

namespace MLNet.Lora.Adapters;

/// <summary>
/// Puts LoRA adapters into a model: every targeted linear layer is wrapped in a <see cref="LoraLinear"/> (or, when
/// already wrapped, gets one more adapter by name). Kept apart from the layer and the config, as in PEFT.
/// </summary>
/// <example>
/// <code>
/// LoraInjector.Inject(model, new LoraConfig { Rank = 8 }, adapterName: "sst2");
/// LoraInjector.MarkOnlyAdaptersTrainable(model, "sst2");
/// </code>
/// </example>
public static class LoraInjector
{
    /// <summary>The name PEFT gives an adapter when none is given.</summary>
    public const string DefaultAdapterName = "default";

    /// <summary>Adds adapter <paramref name="adapterName"/> to every layer that <paramref name="config"/> targets and activates it.</summary>
    /// <returns>The adapted layers by module path.</returns>
    public static IReadOnlyDictionary<string, LoraLinear> Inject(nn.Module model, LoraConfig config, string adapterName = DefaultAdapterName)
    {
        ArgumentNullException.ThrowIfNull(config);
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        var adapted = new Dictionary<string, LoraLinear>();
        foreach (var (path, module) in modules)
        {
            if ((LoraModulePaths.KindOf(path) & config.TargetModules) == 0) continue;
            switch (module)
            {
                case LoraLinear lora:
                    lora.AddAdapter(adapterName, config, path);
                    adapted[path] = lora;
                    break;
                case Linear linear:
                    var wrapper = new LoraLinear(linear);
                    wrapper.AddAdapter(adapterName, config, path);
                    int dot = path.LastIndexOf('.');
                    ReplaceChild(modules[path[..dot]], path[(dot + 1)..], wrapper);
                    adapted[path] = wrapper;
                    break;
            }
        }
        if (adapted.Count == 0)
            throw new ArgumentException($"No linear layer of the model matches {nameof(LoraConfig.TargetModules)} = {config.TargetModules}.", nameof(config));
        return adapted;
    }

    /// <summary>Every adapted layer of <paramref name="model"/>, by module path.</summary>
    public static IReadOnlyList<(string Path, LoraLinear Layer)> FindLoraLayers(nn.Module model) =>
        model.named_modules().Where(m => m.module is LoraLinear).Select(m => (m.name, (LoraLinear)m.module)).ToList();

    /// <summary>
    /// The one adapter state: adapter <paramref name="adapterName"/>'s factors on every adapted layer, found by structure
    /// (the <see cref="LoraLinear"/> modules, as PEFT's <c>_mark_only_adapters_as_trainable</c> walks its layers), in
    /// module order. Trainable-parameter selection, LoRA+ groups, saving, loading, merging and the forgetting
    /// measurements all read adapters through this.
    /// </summary>
    public static IReadOnlyList<LoraFactors> Adapters(nn.Module model, string adapterName = DefaultAdapterName) =>
        FindLoraLayers(model)
            .Where(l => l.Layer.AdapterNames.Contains(adapterName))
            .Select(l => new LoraFactors(l.Path, l.Layer, l.Layer.LoraA(adapterName), l.Layer.LoraB(adapterName)))
            .ToList();

    /// <summary>Freezes every parameter of <paramref name="model"/> except adapter <paramref name="adapterName"/>'s A and B.</summary>
    public static void MarkOnlyAdaptersTrainable(nn.Module model, string adapterName = DefaultAdapterName)
    {
        foreach (var parameter in model.parameters()) parameter.requires_grad = false;
        foreach (var factors in Adapters(model, adapterName))
        {
            factors.A.requires_grad = true;
            factors.B.requires_grad = true;
        }
    }

    /// <summary>Activates adapter <paramref name="adapterName"/> (or none, when null) in every adapted layer.</summary>
    public static void SetActiveAdapter(nn.Module model, string? adapterName)
    {
        foreach (var (_, layer) in FindLoraLayers(model)) layer.SetActiveAdapter(adapterName);
    }

    /// <summary>
    /// Activates adapter <paramref name="adapterName"/> (or none, when null) in every adapted layer until the returned
    /// scope is disposed, which gives each layer back the adapter it had: <c>using (model.ActivateAdapter("sst2")) ...</c>.
    /// </summary>
    public static IDisposable ActivateAdapter(this nn.Module model, string? adapterName)
    {
        var layers = FindLoraLayers(model).Select(l => (l.Layer, Previous: l.Layer.ActiveAdapter)).ToList();
        // Check every layer first, so that a refusal leaves no layer switched.
        if (adapterName is not null && layers.FirstOrDefault(l => !l.Layer.AdapterNames.Contains(adapterName)) is { Layer: not null } missing)
            throw new KeyNotFoundException($"No adapter named '{adapterName}' on every adapted layer (the layer with {string.Join(", ", missing.Layer.AdapterNames)} lacks it).");
        if (layers.Any(l => l.Layer.IsMerged)) throw new InvalidOperationException("Unmerge the adapters before switching them.");
        foreach (var (layer, _) in layers) layer.SetActiveAdapter(adapterName);
        return new AdapterActivation(layers);
    }

    private sealed class AdapterActivation(List<(LoraLinear Layer, string? Previous)> layers) : IDisposable
    {
        private bool disposed;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            foreach (var (layer, previous) in layers)
                if (previous is null || layer.AdapterNames.Contains(previous)) layer.SetActiveAdapter(previous);
        }
    }

    /// <summary>Merges the active adapter of every layer into its inference weights (see <see cref="LoraLinear.Merge"/>).</summary>
    public static void Merge(nn.Module model)
    {
        foreach (var (_, layer) in FindLoraLayers(model)) layer.Merge();
    }

    /// <summary>Undoes <see cref="Merge"/> everywhere.</summary>
    public static void Unmerge(nn.Module model)
    {
        foreach (var (_, layer) in FindLoraLayers(model)) layer.Unmerge();
    }

    /// <summary>
    /// The state of adapter <paramref name="adapterName"/> alone: keys as PEFT saves them (<c>{prefix}{path}.lora_A.weight</c>,
    /// see <see cref="AdapterKeys"/>) to the live parameters.
    /// </summary>
    public static Dictionary<string, Tensor> AdapterState(nn.Module model, string adapterName = DefaultAdapterName, string prefix = "") =>
        AdapterState(model, adapterName, prefix, AdapterKeyStyle.Peft);

    internal static Dictionary<string, Tensor> AdapterState(nn.Module model, string adapterName, string prefix, AdapterKeyStyle style)
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var factors in Adapters(model, adapterName))
        {
            state[AdapterKeys.A(prefix + factors.Path, adapterName, style)] = factors.A;
            state[AdapterKeys.B(prefix + factors.Path, adapterName, style)] = factors.B;
        }
        return state;
    }

    /// <summary>Copies adapter weights saved by <see cref="AdapterState(nn.Module, string, string)"/> into adapter <paramref name="adapterName"/>; every key must match.</summary>
    public static void LoadAdapterState(nn.Module model, IReadOnlyDictionary<string, Tensor> state, string adapterName = DefaultAdapterName, string prefix = "") =>
        LoadAdapterState(model, state, adapterName, prefix, AdapterKeyStyle.Peft, "the saved adapter");

    /// <summary>
    /// Copies <paramref name="state"/> (keys in <paramref name="style"/>) into adapter <paramref name="adapterName"/>: every
    /// adapter weight must be there with its shape, and nothing else; errors name the key and <paramref name="sourceName"/>.
    /// </summary>
    internal static void LoadAdapterState(nn.Module model, IReadOnlyDictionary<string, Tensor> state, string adapterName, string prefix,
        AdapterKeyStyle style, string sourceName)
    {
        var expected = AdapterState(model, adapterName, prefix, style);
        foreach (var key in expected.Keys.Where(k => !state.ContainsKey(k)))
            throw new InvalidDataException($"Adapter weight '{key}' is missing from {sourceName}.");
        foreach (var key in state.Keys.Where(k => !expected.ContainsKey(k)))
            throw new InvalidDataException($"Adapter weight '{key}' in {sourceName} has no matching layer in the model (were the target modules changed?).");
        using var _ = no_grad();
        foreach (var (key, target) in expected)
        {
            Tensor saved = state[key];
            if (!saved.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"Adapter weight '{key}' in {sourceName} has shape [{string.Join(", ", saved.shape)}] but the model expects [{string.Join(", ", target.shape)}].");
            target.copy_(saved);
        }
    }

    /// <summary>
    /// A plain encoder (no adapters, PEFT's <c>merge_and_unload</c>) that computes what <paramref name="encoder"/> computes
    /// now: every adapted layer's weight becomes W + ΔW of its active adapter; everything else is copied. The source is
    /// not changed. In eval mode the two give the same outputs.
    /// </summary>
    /// <remarks>BertModel's constructor draws random weights, which advances torch's global generator.</remarks>
    public static BertModel MergeAndUnload(BertModel encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        var device = encoder.parameters().First().device;
        var copy = new BertModel(encoder.Config);
        copy.to(device);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var sources = encoder.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        foreach (var (path, layer) in FindLoraLayers(encoder))
        {
            // The adapted layer's own names (path.weight, path.bias) get its merged weight and its base bias.
            sources[$"{path}.weight"] = layer.ActiveAdapter is { } active ? layer.BaseLayer.weight!.add(layer.DeltaWeight(active)) : layer.BaseLayer.weight!;
            if (layer.BaseLayer.bias is { } bias) sources[$"{path}.bias"] = bias;
        }
        foreach (var (name, target) in copy.named_parameters())
        {
            if (!sources.TryGetValue(name, out var value))
                throw new InvalidOperationException($"Cannot merge '{name}': the source encoder has no such parameter.");
            target.copy_(value);
        }
        copy.eval();
        return copy;
    }

    /// <summary>Replaces child <paramref name="name"/> of <paramref name="parent"/>: its field (what forward uses) and its registration (what state_dict sees).</summary>
    internal static void ReplaceChild(nn.Module parent, string name, nn.Module child)
    {
        FieldInfo field = FieldsOf(parent.GetType()).FirstOrDefault(f => f.ComponentName() == name)
            ?? throw new InvalidOperationException($"{parent.GetType().Name} has no field for its child module '{name}'.");
        if (!field.FieldType.IsInstanceOfType(child))
            throw new InvalidOperationException($"{parent.GetType().Name}.{field.Name} is a {field.FieldType.Name}; it cannot hold a {child.GetType().Name}.");
        field.SetValue(parent, child);
        parent.register_module(name, null!);   // unregisters the old child
        parent.register_module(name, child);
    }

    private static IEnumerable<FieldInfo> FieldsOf(Type? type)
    {
        for (; type is not null; type = type.BaseType)
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                yield return field;
    }
}

/// <summary>One adapted layer's factors of one adapter.</summary>
/// <param name="Path">Module path of the adapted layer, for example <c>encoder.layer.0.attention.self.query</c>.</param>
/// <param name="Layer">The layer.</param>
/// <param name="A">The factor A, [rank, in].</param>
/// <param name="B">The factor B, [out, rank].</param>
public readonly record struct LoraFactors(string Path, LoraLinear Layer, Parameter A, Parameter B);
