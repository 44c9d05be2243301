using System.Reflection;
using Google.Protobuf;
using MLNet.Lora.Adapters;
using MLNet.Lora.Deployment;
using MLNet.Lora.Encoders;
using MLNet.Lora.IO;
using Onnx;

namespace MLNet.Lora.Export;

/// <summary>
/// Writes a fitted <see cref="LoraTextClassificationTransformer"/> as one self-contained ONNX file: the encoder with the
/// adapters merged, pooling, head and softmax (<see cref="BertClassifierGraph"/>), and the metadata a scorer needs
/// (<see cref="OnnxModelMetadata"/>). The file is written beside the target and renamed over it.
/// </summary>
internal static class LoraOnnxExporter
{
    public static void Export(LoraTextClassificationTransformer transformer, string path, OnnxExportOptions? options)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        options ??= new OnnxExportOptions();
        if (!Enum.IsDefined(options.Quantization))
            throw new ArgumentOutOfRangeException(nameof(options), options.Quantization, $"Unknown {nameof(OnnxExportOptions.Quantization)}.");
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot export to '{path}': folder '{folder}' does not exist. Create it first.");
        if (Directory.Exists(full))
            throw new IOException($"Cannot export to '{path}': it is a folder. Give a file path such as '{Path.Combine(path, "model.onnx")}'.");
        if (!options.Overwrite && File.Exists(full))
            throw new IOException($"Cannot export to '{path}': the file exists and {nameof(OnnxExportOptions.Overwrite)} is false.");

        ModelProto model = Build(transformer, path, options);
        AtomicFile.Write(full, model.WriteTo, createFolder: false);
    }

    /// <summary>The ONNX model of <paramref name="transformer"/>; <paramref name="target"/> names the file in errors.</summary>
    internal static ModelProto Build(LoraTextClassificationTransformer transformer, string target, OnnxExportOptions options)
    {
        using var lease = transformer.Use();      // the network stays live (and undisposed) while it is read
        var network = lease.Model;
        var settings = transformer.Settings;
        // A plain copy with every adapter folded in (the one merge, MergeAndUnload): the live network, which other
        // threads may be scoring with, is never changed. Non-finite weights are refused as they are read.
        ExportedWeights weights;
        using (var merged = LoraInjector.MergeAndUnload(network.Encoder)) weights = new ExportedWeights(merged, network.Classifier, target);

        BertConfig config = network.Encoder.Config;
        var graph = BertClassifierGraph.Build(weights, config, settings.Pooling, settings.ClassCount, options);
        string version = typeof(LoraOnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
            ?? typeof(LoraOnnxExporter).Assembly.GetName().Version?.ToString() ?? "unknown";
        var metadata = new OnnxModelMetadata
        {
            PackageVersion = version,
            Tokenizer = new OnnxModelMetadata.TokenizerSettings("bert_wordpiece", transformer.Tokenizer.LowerCase),
            Vocabulary = transformer.Tokenizer.Vocabulary,
            MaxLength = settings.MaxSequenceLength,
            Pooling = settings.Pooling == PoolingStrategy.Pooler && !weights.Contains("pooler.dense.weight")
                ? "cls" : settings.Pooling.ToString().ToLowerInvariant(),
            Labels = settings.Classes,
            ClassCount = settings.ClassCount,
            Columns = new OnnxModelMetadata.ColumnNames(settings.TextColumnName, settings.SecondTextColumnName, settings.ScoreColumnName, settings.PredictedLabelColumnName),
            BaseEncoder = new OnnxModelMetadata.EncoderDescription(settings.BaseEncoder.Name, settings.BaseEncoder.Sha256, settings.BaseEncoder.Source?.ToString()),
            Quantization = options.Quantization == OnnxQuantization.DynamicInt8 ? "dynamic_int8" : "none",
        };

        var model = new ModelProto
        {
            IrVersion = 8,                 // the IR version of opset 17
            ProducerName = "MLNet.Lora",
            ProducerVersion = version,
            Domain = "mlnet.lora",
            ModelVersion = OnnxModelMetadata.CurrentFormatVersion,
            DocString = $"LoRA text classifier over {settings.BaseEncoder.Name}: inputs input_ids, attention_mask, token_type_ids " +
                        "(int64 [batch, sequence]); outputs logits and probabilities (float32 [batch, classes]).",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = BertClassifierGraph.Opset });
        foreach (var (key, value) in metadata.ToProperties()) model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model;
    }
}
