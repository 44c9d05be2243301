using MLNet.Lora.Adapters;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.Peft;

/// <summary>
/// A PEFT adapter read from a folder and checked against a base encoder: the LoRA config, the adapter's factors under
/// this package's keys, the head when the folder has one, and the sidecar when MLNet.Lora wrote the folder.
/// </summary>
/// <param name="Config">From <c>adapter_config.json</c>.</param>
/// <param name="AdapterWeights">Factors by encoder adapter key (<c>encoder.layer.0.attention.self.query.lora_A.weight</c>).</param>
/// <param name="HeadWeight">The head's weight [classes, hidden], or null.</param>
/// <param name="HeadBias">The head's bias [classes], or null.</param>
/// <param name="Sidecar">The folder's <c>mlnet_lora.json</c>, or null.</param>
/// <param name="Directory">The folder, for messages.</param>
internal sealed record PeftAdapter(LoraConfig Config, IReadOnlyDictionary<string, Tensor> AdapterWeights, Tensor? HeadWeight, Tensor? HeadBias,
    PeftSidecar? Sidecar, string Directory) : IDisposable
{
    /// <summary>Number of classes of the head, or null when the folder has none.</summary>
    public int? ClassCount => HeadWeight is null ? null : (int)HeadWeight.shape[0];

    /// <summary>
    /// Puts this adapter into <paramref name="model"/>, whose encoder was injected with <see cref="Config"/>; copies the
    /// head too when <paramref name="copyHead"/>.
    /// </summary>
    public void CopyInto(TextClassificationModel model, bool copyHead)
    {
        LoraInjector.LoadAdapterState(model.Encoder, AdapterWeights, LoraInjector.DefaultAdapterName, "", AdapterKeyStyle.Peft, $"'{Directory}'");
        if (!copyHead) return;
        using var _ = no_grad();
        model.Classifier.weight!.copy_(HeadWeight ?? throw new InvalidOperationException("The adapter has no head."));
        model.Classifier.bias!.copy_(HeadBias!);
    }

    /// <summary>Frees the tensors read.</summary>
    public void Dispose()
    {
        foreach (var tensor in AdapterWeights.Values) tensor.Dispose();
        HeadWeight?.Dispose();
        HeadBias?.Dispose();
    }
}
