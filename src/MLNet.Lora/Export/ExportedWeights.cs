using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using TorchSharp.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Export;

/// <summary>
/// The weights an exported graph holds, under Hugging Face's names (<c>encoder.layer.0.attention.self.query.weight</c>,
/// <c>classifier.weight</c>), read from a plain encoder whose adapters are folded in
/// (<see cref="LoraInjector.MergeAndUnload"/>) and the head. Every value is checked finite.
/// </summary>
internal sealed class ExportedWeights
{
    private readonly Dictionary<string, (float[] Data, long[] Shape)> weights = new(StringComparer.Ordinal);

    /// <summary>Copies the weights of <paramref name="encoder"/> (no adapters) and of <paramref name="classifier"/>.</summary>
    public ExportedWeights(BertModel encoder, Linear classifier, string targetForErrors)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (name, parameter) in encoder.named_parameters()) Add(name, parameter, targetForErrors);
        Add("classifier.weight", classifier.weight!, targetForErrors);
        Add("classifier.bias", classifier.bias!, targetForErrors);
    }

    /// <summary>Whether a weight is present (the pooler is optional).</summary>
    public bool Contains(string name) => weights.ContainsKey(name);

    /// <summary>A weight's values (row-major) and shape.</summary>
    public (float[] Data, long[] Shape) this[string name] => weights.TryGetValue(name, out var weight)
        ? weight
        : throw new InvalidOperationException($"The model has no weight '{name}' to export.");

    private void Add(string name, Tensor tensor, string target)
    {
        Tensor cpu = tensor.detach().to(float32).cpu().contiguous();
        float[] data = cpu.data<float>().ToArray();
        foreach (float value in data)
        {
            if (!float.IsFinite(value))
                throw new InvalidOperationException(
                    $"Cannot export to '{target}': weight '{name}' holds non-finite values, so the model has diverged. Retrain with a lower learning rate (or gradient clipping) before exporting.");
        }
        weights[name] = (data, cpu.shape);
    }
}
