using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>Frozen copies of an encoder as it computes now, for later comparison or as a fresh starting point.</summary>
internal static class EncoderSnapshot
{
    /// <summary>
    /// A plain <see cref="BertModel"/> (no adapters) that computes what <paramref name="source"/> computes now: every
    /// adapted layer's weight is W + ΔW of its active adapter. In eval mode the two give the same outputs.
    /// </summary>
    /// <remarks>BertModel's constructor draws random weights, which advances torch's global generator; callers that need reproducible randomness seed it afterwards.</remarks>
    public static BertModel Fold(BertModel source)
    {
        var device = EncoderFeatures.DeviceOf(source);
        var copy = new BertModel(source.Config);
        copy.to(device);
        var parameters = source.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var adapted = LoraInjector.FindLoraLayers(source).ToDictionary(l => l.Path, l => l.Layer);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, target) in copy.named_parameters())
        {
            if (parameters.TryGetValue(name, out var same))
            {
                target.copy_(same);
                continue;
            }
            // An adapted layer's tensors sit one level down, under base_layer.
            int dot = name.LastIndexOf('.');
            string path = name[..dot], leaf = name[(dot + 1)..];
            if (!adapted.TryGetValue(path, out var layer))
                throw new InvalidOperationException($"Cannot copy '{name}': the source encoder has no such parameter.");
            Tensor value = leaf == "weight" && layer.ActiveAdapter is { } active
                ? layer.BaseLayer.weight!.add(layer.DeltaWeight(active))
                : parameters[$"{path}.base_layer.{leaf}"];
            target.copy_(value);
        }
        copy.eval();
        return copy;
    }
}
