using Microsoft.ML;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Integration;
using MLNet.Lora.Peft;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.MultiAdapter;

/// <summary>
/// One adapter's weights in CPU memory, outside any network: its settings, its factors (PEFT keys without an adapter
/// name, <c>encoder.layer.0.attention.self.query.lora_A.weight</c>) and its head. Read through the package's own
/// loaders, so a set accepts exactly what <c>LoadWithAdapters</c> and <c>LoadPeftAdapter</c> accept.
/// </summary>
internal sealed class AdapterWeights : IDisposable
{
    public AdapterWeights(LoraModelSettings settings, Dictionary<string, Tensor> factors, Tensor headWeight, Tensor headBias)
    {
        Settings = settings;
        Factors = factors;
        HeadWeight = headWeight;
        HeadBias = headBias;
    }

    public LoraModelSettings Settings { get; }

    public Dictionary<string, Tensor> Factors { get; }

    public Tensor HeadWeight { get; }

    public Tensor HeadBias { get; }

    /// <summary>Bytes the adapter takes in a network: its factors and its head.</summary>
    public long Bytes => Factors.Values.Append(HeadWeight).Append(HeadBias).Sum(t => t.numel() * t.ElementSize);

    /// <summary>
    /// Reads the adapter at <paramref name="path"/>: a <c>SaveWithAdapters</c> zip holding one LoRA classifier, or a PEFT
    /// adapter folder. Its base must be <paramref name="baseEncoder"/> (checked by SHA-256 where the file records it).
    /// </summary>
    public static AdapterWeights Read(MLContext ml, string path, PretrainedEncoder baseEncoder) =>
        FromClassifier(ml, path, baseEncoder, (model, network) =>
        {
            if (model.Settings.SecondTextColumnName is { } second)
                throw new InvalidDataException($"'{path}' classifies text pairs (second text column '{second}'); an adapter set scores single texts only. Serve it as a model of its own.");
            var head = network.Classifier;
            return new AdapterWeights(model.Settings, FactorsOf(network), Keep(head.weight!), Keep(head.bias!));
        });

    /// <summary>
    /// Only the factors of the adapter at <paramref name="path"/>, keyed as <see cref="Factors"/> (CPU copies, the
    /// caller's). Unlike <see cref="Read"/>, a PEFT folder needs no classification head, and a text-pair classifier counts.
    /// </summary>
    public static Dictionary<string, Tensor> ReadFactors(MLContext ml, string path, PretrainedEncoder baseEncoder)
    {
        if (!Directory.Exists(path)) return FromClassifier(ml, path, baseEncoder, (_, network) => FactorsOf(network));
        using var adapter = PeftAdapterFolder.Read(path, baseEncoder.Model);
        PeftAdapterFolder.CheckBase(adapter, path, baseEncoder.Identity);
        using var scope = NewDisposeScope();
        return adapter.AdapterWeights.ToDictionary(f => f.Key, f => Keep(f.Value), StringComparer.Ordinal);
    }

    private static Tensor Keep(Tensor t) => t.detach().to(float32).cpu().clone().DetachFromDisposeScope();

    private static Dictionary<string, Tensor> FactorsOf(TextClassificationModel network) =>
        LoraInjector.AdapterState(network.Encoder, LoraInjector.DefaultAdapterName).ToDictionary(f => f.Key, f => Keep(f.Value), StringComparer.Ordinal);

    /// <summary>Loads the one LoRA-mode classifier at <paramref name="path"/>, lets <paramref name="read"/> copy what it needs, and disposes the rest.</summary>
    private static T FromClassifier<T>(MLContext ml, string path, PretrainedEncoder baseEncoder, Func<LoraTextClassificationTransformer, TextClassificationModel, T> read)
    {
        ITransformer loaded = Directory.Exists(path)
            ? LoraTextClassificationTransformer.LoadPeftAdapter(ml, path, baseEncoder)
            : File.Exists(path) ? ml.Model.LoadWithAdapters(path, out _, baseEncoder)
            : throw new FileNotFoundException($"Adapter '{path}' does not exist (give a SaveWithAdapters zip or a PEFT adapter folder).", path);
        var parts = AdapterModelArchive.Flatten(loaded).ToList();
        try
        {
            var lora = parts.OfType<LoraTextClassificationTransformer>().ToList();
            if (lora.Count != 1)
                throw new InvalidDataException($"'{path}' holds {lora.Count} LoRA text classifiers; give a file that holds exactly one.");
            var model = lora[0];
            if (model.Settings.Mode != FineTuningMode.Lora)
                throw new InvalidDataException($"'{path}' was trained with {nameof(FineTuningMode)}.{model.Settings.Mode}, so it has no LoRA adapter; give a model trained with Mode = {nameof(FineTuningMode.Lora)}.");
            using var lease = model.Use();
            using var scope = NewDisposeScope();
            return read(model, lease.Model);
        }
        finally
        {
            foreach (var part in parts.OfType<IDisposable>()) part.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var tensor in Factors.Values) tensor.Dispose();
        HeadWeight.Dispose();
        HeadBias.Dispose();
    }
}
