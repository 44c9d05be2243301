using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Integration;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.Peft;

/// <summary>Writes and reads the folder <c>PeftModel.save_pretrained</c> writes and <c>PeftModel.from_pretrained</c> reads.</summary>
internal static class PeftAdapterFolder
{
    public const string SafetensorsFile = "adapter_model.safetensors";
    public const string PickleFile = "adapter_model.bin";

    /// <summary>
    /// Writes <paramref name="model"/>'s default adapter and head, atomically: <c>adapter_config.json</c>,
    /// <c>adapter_model.safetensors</c> (metadata <c>{"format": "pt"}</c>), <c>README.md</c> and <c>mlnet_lora.json</c>.
    /// </summary>
    public static void Save(string directory, TextClassificationModel model, LoraModelSettings settings, bool overwrite)
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, tensor) in LoraInjector.AdapterState(model.Encoder))
            tensors[PeftKeyMap.ToPeft(key)] = tensor.detach();
        tensors[PeftKeyMap.HeadToPeft("weight")] = model.Classifier.weight!.detach();
        tensors[PeftKeyMap.HeadToPeft("bias")] = model.Classifier.bias!.detach();
        foreach (var (key, tensor) in tensors)
            if (!tensor.isfinite().all().item<bool>())
                throw new InvalidOperationException($"Cannot export the adapter: '{key}' holds non-finite values (the fit diverged).");

        string baseModel = BaseModelName(settings.BaseEncoder);
        AtomicDirectory.Replace(directory, overwrite, folder =>
        {
            CheckpointFiles.WriteText(Path.Combine(folder, PeftAdapterConfig.FileName), PeftAdapterConfig.Write(settings.Lora, baseModel));
            Peft.SafetensorsFile.Write(Path.Combine(folder, SafetensorsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            CheckpointFiles.WriteText(Path.Combine(folder, PeftModelCard.FileName), PeftModelCard.Write(baseModel, settings.Pooling, settings.ClassCount));
            CheckpointFiles.WriteText(Path.Combine(folder, PeftSidecar.FileName), PeftSidecar.For(settings).ToJson());
        });
    }

    /// <summary>
    /// Refuses an adapter whose sidecar records another base (by SHA-256) than <paramref name="identity"/>. PEFT's own
    /// files record only a model name, so an adapter without the sidecar is checked by shape alone (in <see cref="Read"/>).
    /// </summary>
    public static void CheckBase(PeftAdapter adapter, string directory, Checkpoints.EncoderIdentity identity)
    {
        if (adapter.Sidecar?.Settings is { } recorded && !string.Equals(recorded.BaseEncoder.Sha256, identity.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"'{directory}' was trained on base encoder '{recorded.BaseEncoder.Name}' with weights SHA-256 {recorded.BaseEncoder.Sha256}, " +
                                                $"but the base encoder given ('{identity.Name}') has SHA-256 {identity.Sha256}. Adapters only work on the exact base they were trained on.");
    }

    /// <summary>
    /// Reads the adapter in <paramref name="directory"/> for <paramref name="baseEncoder"/>: every key and shape is checked
    /// against the encoder, and anything that cannot be honoured is refused naming the key or field. Dispose the result.
    /// </summary>
    public static PeftAdapter Read(string directory, BertModel baseEncoder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(baseEncoder);
        using var scope = NewDisposeScope();
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"PEFT adapter folder '{directory}' does not exist.");
        string configPath = Path.Combine(directory, PeftAdapterConfig.FileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"'{directory}' is not a PEFT adapter folder: {PeftAdapterConfig.FileName} is missing.", configPath);
        int layers = baseEncoder.Config.NumHiddenLayers;
        var config = PeftAdapterConfig.Read(File.ReadAllText(configPath), configPath, layers);

        string safetensors = Path.Combine(directory, SafetensorsFile), pickle = Path.Combine(directory, PickleFile);
        string weightsPath = File.Exists(safetensors) ? safetensors
            : File.Exists(pickle) ? pickle
            : throw new FileNotFoundException($"'{directory}' has neither {SafetensorsFile} nor {PickleFile}.", safetensors);
        var tensors = weightsPath == safetensors ? CheckpointFiles.ReadSafetensors(weightsPath) : CheckpointFiles.ReadPickle(weightsPath);

        // The base's linear layers, [out, in], by module path.
        var shapes = baseEncoder.named_parameters()
            .Where(p => p.name.EndsWith(".weight", StringComparison.Ordinal) && LoraModulePaths.KindOf(p.name[..^".weight".Length]) != LoraTargetModules.None)
            .ToDictionary(p => p.name[..^".weight".Length], p => p.parameter.shape, StringComparer.Ordinal);
        long hidden = baseEncoder.Config.HiddenSize;
        var adapter = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Tensor? headWeight = null, headBias = null;
        foreach (var (key, tensor) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var (role, mapped, path) = PeftKeyMap.FromPeft(key, layers, weightsPath);
            if (!tensor.is_floating_point())
                throw new InvalidDataException($"'{weightsPath}': tensor '{key}' has element type {tensor.dtype}; weights must be floating point.");
            if (role == PeftKeyMap.Role.Head)
            {
                bool isWeight = mapped == "weight";
                bool fits = isWeight ? tensor.dim() == 2 && tensor.shape[1] == hidden : tensor.dim() == 1;
                if (!fits)
                    throw new NotSupportedException($"'{weightsPath}': tensor '{key}' has shape {CheckpointKeyMap.Format(tensor.shape)}, which does not fit a head over " +
                                                    $"the encoder's hidden size {hidden} ({(isWeight ? "[classes, " + hidden + "]" : "[classes]")}).");
                if (isWeight) headWeight = tensor; else headBias = tensor;
                continue;
            }
            if ((LoraModulePaths.KindOf(path) & config.TargetModules) == 0)
                throw new NotSupportedException($"'{weightsPath}': tensor '{key}' adapts '{path}', which target_modules in {PeftAdapterConfig.FileName} ({config.TargetModules}) does not select.");
            long[] baseShape = shapes[path];
            int rank = config.RankFor(path);
            bool isA = mapped.EndsWith($".{AdapterKeys.FactorA}.weight", StringComparison.Ordinal);
            long[] expected = isA ? [rank, baseShape[1]] : [baseShape[0], rank];
            if (!tensor.shape.SequenceEqual(expected))
                throw new NotSupportedException($"'{weightsPath}': tensor '{key}' has shape {CheckpointKeyMap.Format(tensor.shape)} but the base layer '{path}' " +
                                                $"({baseShape[0]} out, {baseShape[1]} in) with rank {rank} from {PeftAdapterConfig.FileName} needs {CheckpointKeyMap.Format(expected)}.");
            adapter[mapped] = tensor.to(float32).clone().DetachFromDisposeScope();
        }
        if ((headWeight is null) != (headBias is null) || (headWeight is not null && headWeight.shape[0] != headBias!.shape[0]))
            throw new InvalidDataException($"'{weightsPath}': the head needs both '{PeftKeyMap.HeadToPeft("weight")}' and '{PeftKeyMap.HeadToPeft("bias")}' with the same number of classes.");
        foreach (var path in shapes.Keys.Where(p => (LoraModulePaths.KindOf(p) & config.TargetModules) != 0))
            foreach (var factor in new[] { AdapterKeys.A(path, "", AdapterKeyStyle.Peft), AdapterKeys.B(path, "", AdapterKeyStyle.Peft) })
                if (!adapter.ContainsKey(factor))
                    throw new InvalidDataException($"'{weightsPath}': tensor '{PeftKeyMap.ToPeft(factor)}' is missing, but target_modules in {PeftAdapterConfig.FileName} selects '{path}'.");

        string sidecarPath = Path.Combine(directory, PeftSidecar.FileName);
        var sidecar = File.Exists(sidecarPath) ? PeftSidecar.Read(sidecarPath) : null;
        return new PeftAdapter(config, adapter, headWeight?.to(float32).clone().DetachFromDisposeScope(), headBias?.to(float32).clone().DetachFromDisposeScope(), sidecar, directory);
    }

    /// <summary>What <c>base_model_name_or_path</c> says: the Hugging Face name of the default encoder, else the folder or file it came from, else its name.</summary>
    internal static string BaseModelName(EncoderIdentity identity) =>
        identity.Source.Kind == EncoderSourceKind.Default && identity.Name == DefaultEncoderResources.Name
            ? "sentence-transformers/" + DefaultEncoderResources.Name
            : identity.Source.Path ?? identity.Name;
}
