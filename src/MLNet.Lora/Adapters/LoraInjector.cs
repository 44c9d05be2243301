using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
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
        config.Validate();
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        var adapted = new Dictionary<string, LoraLinear>();
        foreach (var (path, module) in modules)
        {
            if ((LoraModulePaths.KindOf(path) & config.TargetModules) == 0) continue;
            switch (module)
            {
                case LoraLinear lora:
                    lora.AddAdapter(adapterName, config);
                    adapted[path] = lora;
                    break;
                case Linear linear:
                    var wrapper = new LoraLinear(linear);
                    wrapper.AddAdapter(adapterName, config);
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

    /// <summary>Freezes every parameter of <paramref name="model"/> except adapter <paramref name="adapterName"/>'s A and B.</summary>
    public static void MarkOnlyAdaptersTrainable(nn.Module model, string adapterName = DefaultAdapterName)
    {
        foreach (var parameter in model.parameters()) parameter.requires_grad = false;
        foreach (var (_, layer) in FindLoraLayers(model))
        {
            if (!layer.AdapterNames.Contains(adapterName)) continue;
            layer.LoraA(adapterName).requires_grad = true;
            layer.LoraB(adapterName).requires_grad = true;
        }
    }

    /// <summary>Activates adapter <paramref name="adapterName"/> (or none, when null) in every adapted layer.</summary>
    public static void SetActiveAdapter(nn.Module model, string? adapterName)
    {
        foreach (var (_, layer) in FindLoraLayers(model)) layer.SetActiveAdapter(adapterName);
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

    /// <summary>The state of adapter <paramref name="adapterName"/> alone: PEFT-style keys (<c>...query.lora_A.weight</c>) to tensors.</summary>
    public static Dictionary<string, Tensor> AdapterState(nn.Module model, string adapterName = DefaultAdapterName, string prefix = "")
    {
        var state = new Dictionary<string, Tensor>();
        foreach (var (path, layer) in FindLoraLayers(model))
        {
            if (!layer.AdapterNames.Contains(adapterName)) continue;
            state[$"{prefix}{path}.lora_A.weight"] = layer.LoraA(adapterName);
            state[$"{prefix}{path}.lora_B.weight"] = layer.LoraB(adapterName);
        }
        return state;
    }

    /// <summary>Copies adapter weights saved by <see cref="AdapterState"/> into adapter <paramref name="adapterName"/>; every key must match.</summary>
    public static void LoadAdapterState(nn.Module model, IReadOnlyDictionary<string, Tensor> state, string adapterName = DefaultAdapterName, string prefix = "")
    {
        var expected = AdapterState(model, adapterName, prefix);
        foreach (var key in expected.Keys.Where(k => !state.ContainsKey(k)))
            throw new InvalidDataException($"Adapter weight '{key}' is missing from the saved adapter.");
        foreach (var key in state.Keys.Where(k => !expected.ContainsKey(k)))
            throw new InvalidDataException($"Saved adapter weight '{key}' has no matching layer in the model (were the target modules changed?).");
        using var _ = no_grad();
        foreach (var (key, target) in expected)
        {
            Tensor source = state[key];
            if (!source.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"Saved adapter weight '{key}' has shape [{string.Join(", ", source.shape)}] but the model expects [{string.Join(", ", target.shape)}].");
            target.copy_(source);
        }
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
