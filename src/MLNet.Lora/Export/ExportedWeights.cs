using MLNet.Lora.Adapters;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Export;

/// <summary>
/// The weights an exported graph holds, under Hugging Face's names (<c>encoder.layer.0.attention.self.query.weight</c>,
/// <c>classifier.weight</c>), read from a model whose adapters are merged: an adapted layer contributes its merged
/// weight, the adapters' own factors are not exported. Every value is checked finite.
/// </summary>
internal sealed class ExportedWeights
{
    private readonly Dictionary<string, (float[] Data, long[] Shape)> weights = new(StringComparer.Ordinal);

    /// <summary>Copies the weights of <paramref name="model"/>, whose adapters the caller has merged (see <see cref="LoraInjector.Merge"/>).</summary>
    public ExportedWeights(TextClassificationModel model, string targetForErrors)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (name, parameter) in model.Encoder.named_parameters())
        {
            if (name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal)) continue;
            Add(name.Replace(".base_layer.", ".", StringComparison.Ordinal), parameter, targetForErrors);
        }
        foreach (var (path, layer) in LoraInjector.FindLoraLayers(model.Encoder))
        {
            if (layer.ActiveAdapter is not null && !layer.IsMerged)
                throw new InvalidOperationException($"The adapter of '{path}' is not merged; merge the adapters before exporting.");
            Add($"{path}.weight", layer.InferenceWeight, targetForErrors);
        }
        Add("classifier.weight", model.Classifier.weight!, targetForErrors);
        Add("classifier.bias", model.Classifier.bias!, targetForErrors);
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
