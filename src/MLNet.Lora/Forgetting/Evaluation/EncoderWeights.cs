using MLNet.Lora.Adapters;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>One weight matrix of a transformer layer (or one adapter on it), with its module kind.</summary>
/// <param name="Path">Module path, for instance <c>encoder.layer.3.attention.self.query</c>.</param>
/// <param name="Kind">The module kind (query, key, value, attention output, intermediate, output).</param>
/// <param name="Parameters">The tensors that make up the module's weight: the matrix W, or an adapter's A and B.</param>
internal sealed record WeightModule(string Path, LoraTargetModules Kind, IReadOnlyList<Parameter> Parameters)
{
    public long ParameterCount => Parameters.Sum(p => p.numel());
}

/// <summary>Finds the weight matrices of an encoder's transformer layers and the adapters on them.</summary>
internal static class EncoderWeights
{
    /// <summary>
    /// The linear weight W of every query, key, value, attention-output, intermediate and output layer, in forward order.
    /// For an adapted layer this is the frozen base weight; since the layer computes (W + ΔW)x, the gradient with respect
    /// to W equals the gradient with respect to the effective weight, which is what full fine-tuning would follow.
    /// </summary>
    public static IReadOnlyList<WeightModule> Matrices(nn.Module encoder)
    {
        var list = new List<WeightModule>();
        foreach (var (path, module) in encoder.named_modules())
        {
            var kind = LoraModulePaths.KindOf(path);
            if (kind == LoraTargetModules.None) continue;
            var weight = module switch
            {
                LoraLinear lora => lora.BaseLayer.weight,
                Linear linear => linear.weight,
                _ => null,
            };
            if (weight is not null) list.Add(new WeightModule(path, kind, [weight]));
        }
        return list;
    }

    /// <summary>The factors A and B of adapter <paramref name="adapterName"/> on every layer that has it.</summary>
    public static IReadOnlyList<WeightModule> Adapters(nn.Module encoder, string adapterName) =>
        LoraInjector.Adapters(encoder, adapterName)
            .Select(f => new WeightModule(f.Path, LoraModulePaths.KindOf(f.Path), [f.A, f.B]))
            .ToList();

    /// <summary>The adapter active in the encoder's adapted layers, or null when none is (or the encoder has no adapters).</summary>
    public static string? ActiveAdapter(nn.Module encoder) =>
        LoraInjector.FindLoraLayers(encoder).Select(l => l.Layer.ActiveAdapter).FirstOrDefault(a => a is not null);

    /// <summary>Every parameter of the encoder that currently requires grad.</summary>
    public static IReadOnlyList<Parameter> Trainable(nn.Module encoder) =>
        encoder.parameters().Where(p => p.requires_grad).ToList();

    /// <summary>Short readable name of a module kind, as used in reports.</summary>
    public static string KindName(LoraTargetModules kind) => kind switch
    {
        LoraTargetModules.Query => "query",
        LoraTargetModules.Key => "key",
        LoraTargetModules.Value => "value",
        LoraTargetModules.AttentionOutput => "attention-output",
        LoraTargetModules.Intermediate => "intermediate",
        LoraTargetModules.Output => "output",
        _ => kind.ToString(),
    };

    /// <summary>Module-kind names in a layer's forward order.</summary>
    public static IReadOnlyList<string> KindNames { get; } = LoraModulePaths.Kinds.Select(KindName).ToList();
}
