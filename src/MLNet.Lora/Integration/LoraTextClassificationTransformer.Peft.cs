using Microsoft.ML;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Integration;
using MLNet.Lora.Peft;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora;

public sealed partial class LoraTextClassificationTransformer
{
    /// <summary>
    /// Writes the adapter and the classification head in Hugging Face PEFT's format, what <c>PeftModel.from_pretrained</c>
    /// and <c>AutoPeftModelForSequenceClassification</c> read: <c>adapter_config.json</c>, <c>adapter_model.safetensors</c>
    /// (keys of a <c>BertForSequenceClassification</c>: <c>base_model.model.bert.encoder.layer.{i}...lora_A.weight</c>, and
    /// <c>base_model.model.classifier.weight</c>/<c>.bias</c>), a <c>README.md</c> model card, and <c>mlnet_lora.json</c>
    /// (the pooling, columns and classes, which PEFT has no place for). The folder is written atomically. docs/adapters.md
    /// has the key table and the Python side.
    /// </summary>
    /// <param name="directory">The folder to write.</param>
    /// <param name="overwrite">Replace the folder when it exists and is not empty.</param>
    /// <exception cref="InvalidOperationException">The model was not trained with LoRA adapters.</exception>
    public void SavePeftAdapter(string directory, bool overwrite = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (Settings.Mode != FineTuningMode.Lora)
            throw new InvalidOperationException($"Only a model trained with LoRA adapters can be saved as a PEFT adapter; this one was trained with {nameof(FineTuningMode)}.{Settings.Mode}. Save it with SaveWithAdapters.");
        using var lease = Use();
        PeftAdapterFolder.Save(directory, lease.Model, Settings, overwrite);
    }

    /// <summary>
    /// Loads a Hugging Face PEFT LoRA adapter and its classification head onto <paramref name="baseEncoder"/> (whose weights
    /// are copied, not changed). Reads <c>adapter_model.safetensors</c> or <c>adapter_model.bin</c>, the keys of a
    /// <c>BertForSequenceClassification</c> or of a bare <c>BertModel</c> base, <c>rank_pattern</c>/<c>alpha_pattern</c> and
    /// <c>use_rslora</c>. What it cannot honour (DoRA, LoRA biases, a module the encoder does not have, a shape that does not
    /// fit the base) is refused with an error naming the key or field.
    /// </summary>
    /// <param name="mlContext">The context the transformer scores in.</param>
    /// <param name="directory">The adapter folder.</param>
    /// <param name="baseEncoder">The encoder the adapter was trained on.</param>
    /// <param name="pooling">How token states are pooled; default the folder's <c>mlnet_lora.json</c>, else
    /// <see cref="PoolingStrategy.Pooler"/> (<c>BertForSequenceClassification</c>'s own head).</param>
    /// <param name="classNames">The classes' names in the head's order; default the folder's <c>mlnet_lora.json</c>, else none (keys only).</param>
    /// <param name="textColumnName">The text column; default the folder's <c>mlnet_lora.json</c>, else <c>Text</c>.</param>
    /// <param name="secondTextColumnName">The second text column of pair tasks; default the folder's <c>mlnet_lora.json</c>, else none.</param>
    /// <param name="maxSequenceLength">Tokens per text; default the folder's <c>mlnet_lora.json</c>, else 128.</param>
    /// <exception cref="NotSupportedException">The adapter uses something this package cannot reproduce (the message names it).</exception>
    /// <exception cref="InvalidDataException">The folder's files are incomplete or inconsistent.</exception>
    public static LoraTextClassificationTransformer LoadPeftAdapter(MLContext mlContext, string directory, PretrainedEncoder baseEncoder,
        PoolingStrategy? pooling = null, IReadOnlyList<string>? classNames = null, string? textColumnName = null,
        string? secondTextColumnName = null, int? maxSequenceLength = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(baseEncoder);
        using var adapter = PeftAdapterFolder.Read(directory, baseEncoder.Model);
        if (adapter.ClassCount is not { } classCount)
            throw new InvalidDataException($"'{directory}' has no classification head ({PeftKeyMap.HeadToPeft("weight")}): PEFT saves it only when " +
                                           "the adapter was trained with task_type SEQ_CLS or modules_to_save [\"classifier\"]. Start a new fit from the adapter " +
                                           $"with {nameof(LoraTextClassificationTrainer.Options)}.{nameof(LoraTextClassificationTrainer.Options.InitialAdapter)} instead.");
        PeftAdapterFolder.CheckBase(adapter, directory, baseEncoder.Identity);
        var recorded = adapter.Sidecar?.Settings;
        if (recorded is not null && recorded.ClassCount != classCount)
            throw new InvalidDataException($"'{directory}': {PeftSidecar.FileName} records {recorded.ClassCount} classes but the head has {classCount}.");

        var classes = classNames is not null ? new ClassKeyValues("Text", classNames.ToArray()) : recorded?.Classes;
        if (classes is not null && classes.Values.Length != classCount)
            throw new ArgumentException($"{classes.Values.Length} class names were given but the adapter's head has {classCount} classes.", nameof(classNames));
        var effectivePooling = pooling ?? recorded?.Pooling ?? PoolingStrategy.Pooler;
        if (effectivePooling == PoolingStrategy.Pooler && !baseEncoder.Config.AddPoolingLayer)
            throw new NotSupportedException($"'{directory}' is read as an adapter of BertForSequenceClassification, whose head reads the pooler, but " +
                                            Encoders.Pooling.NoPoolerMessage($"base encoder '{baseEncoder.Identity.Name}'") + " Pass pooling: to say how the adapter was trained.");
        var settings = new LoraModelSettings
        {
            TextColumnName = textColumnName ?? recorded?.TextColumnName ?? DefaultColumnNames.Text,
            SecondTextColumnName = secondTextColumnName ?? recorded?.SecondTextColumnName,
            ScoreColumnName = recorded?.ScoreColumnName ?? DefaultColumnNames.Score,
            PredictedLabelColumnName = recorded?.PredictedLabelColumnName ?? DefaultColumnNames.PredictedLabel,
            LabelColumnName = recorded?.LabelColumnName ?? DefaultColumnNames.Label,
            Mode = FineTuningMode.Lora,
            Lora = adapter.Config,
            Pooling = effectivePooling,
            MaxSequenceLength = maxSequenceLength ?? recorded?.MaxSequenceLength ?? 128,
            InferenceBatchSize = recorded?.InferenceBatchSize ?? 64,
            Classes = classes,
            ClassCount = classCount,
            BaseEncoder = baseEncoder.Identity,
        };
        var env = MLContextAccess.EnvironmentOf(mlContext);
        var device = MLContextAccess.Device(env);
        var shared = SharedBaseEncoder.For(baseEncoder);
        var network = BuildModel(shared.CreateEncoder(frozen: true), settings);
        try
        {
            adapter.CopyInto(network, copyHead: true);
            network.to(device);
            return new LoraTextClassificationTransformer(env, network, shared, settings, device);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}
