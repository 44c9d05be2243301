using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Adapters;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora;

/// <summary>
/// A fitted LoRA text classifier: adds a <c>Score</c> column (class probabilities) and a <c>PredictedLabel</c> key
/// column, scoring rows in batches. Works in pipelines, with <c>PredictionEngine</c> (one engine per thread, as ML.NET
/// documents) and with ML.NET's evaluators. Save it with <c>mlContext.Model.SaveWithAdapters</c>.
/// </summary>
public sealed partial class LoraTextClassificationTransformer : ITransformer, IDisposable
{
    private readonly TextClassificationModel model;
    private readonly BertTextTokenizer tokenizer;
    private readonly Device device;

    internal LoraTextClassificationTransformer(IHostEnvironment env, TextClassificationModel model, BertTextTokenizer tokenizer,
        Integration.LoraModelSettings settings, Device device)
    {
        Environment = env;
        this.model = model;
        this.tokenizer = tokenizer;
        this.device = device;
        Settings = settings;
        model.eval();
    }

    /// <summary>Columns, adapter settings, classes and base encoder identity.</summary>
    public Integration.LoraModelSettings Settings { get; }

    /// <summary>The network: the encoder with its adapters, and the head.</summary>
    public TextClassificationModel Model => model;

    /// <summary>The tokenizer of the base encoder.</summary>
    public BertTextTokenizer Tokenizer => tokenizer;

    /// <summary>Number of parameters that were trained (adapters and head, or everything in full fine-tuning).</summary>
    public long TrainedParameterCount => Settings.Mode switch
    {
        FineTuningMode.Full => model.parameters().Sum(p => p.numel()),
        FineTuningMode.HeadOnly => model.Classifier.parameters().Sum(p => p.numel()),
        _ => LoraInjector.AdapterState(model.Encoder).Values.Sum(t => t.numel()) + model.Classifier.parameters().Sum(p => p.numel()),
    };

    /// <summary>The per-epoch figures of the fit that produced this model (empty after loading).</summary>
    public IReadOnlyList<EpochSummary> TrainingHistory { get; init; } = [];

    internal IHostEnvironment Environment { get; }

    /// <summary>Whether the adapters are merged into the inference weights.</summary>
    public bool AdaptersMerged => LoraInjector.FindLoraLayers(model.Encoder).Any(l => l.Layer.IsMerged);

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <summary>Folds the adapters into copies of the adapted weights: same outputs, no extra latency. The base stays untouched.</summary>
    public void MergeAdapters() => LoraInjector.Merge(model.Encoder);

    /// <summary>Undoes <see cref="MergeAdapters"/>.</summary>
    public void UnmergeAdapters() => LoraInjector.Unmerge(model.Encoder);

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        CheckInput(inputSchema);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(Settings.ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, Settings.ClassCount), Settings.Classes?.SlotNameAnnotations());
        builder.AddColumn(Settings.PredictedLabelColumnName, new KeyDataViewType(typeof(uint), Settings.ClassCount), Settings.Classes?.KeyAnnotations());
        return builder.ToSchema();
    }

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new Integration.ScoredDataView(this, input);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new Integration.ScoringRowMapper(this, inputSchema);

    /// <summary>
    /// ML.NET's own serializer cannot hold TorchSharp weights: save with <c>mlContext.Model.SaveWithAdapters</c>.
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        $"{nameof(LoraTextClassificationTransformer)} cannot be saved with mlContext.Model.Save: use mlContext.Model.SaveWithAdapters(model, schema, path) " +
        "(and LoadWithAdapters to read it back), which writes the standard transforms with ML.NET's serializer and the LoRA adapters beside them.");

    /// <summary>
    /// Class probabilities for a batch of texts (and optional pairs): one row per text. Sorts by length internally so that
    /// each forward pass pads little.
    /// </summary>
    public float[][] PredictProbabilities(IReadOnlyList<string?> texts, IReadOnlyList<string?>? pairs = null)
    {
        var encoded = new EncodedText[texts.Count];
        for (int i = 0; i < encoded.Length; i++) encoded[i] = tokenizer.Encode(texts[i], pairs?[i], Settings.MaxSequenceLength);
        var order = Enumerable.Range(0, encoded.Length).OrderBy(i => encoded[i].Length).ToArray();
        var result = new float[encoded.Length][];
        int batchSize = Settings.InferenceBatchSize;
        for (int start = 0; start < order.Length; start += batchSize)
        {
            var indices = order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray();
            var rows = ScoreEncoded(indices.Select(i => encoded[i]).ToArray());
            for (int k = 0; k < indices.Length; k++) result[indices[k]] = rows[k];
        }
        return result;
    }

    /// <summary>One forward pass over a batch padded to its longest item.</summary>
    internal float[][] ScoreEncoded(IReadOnlyList<EncodedText> items)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var batch = TokenBatch.Collate(items, tokenizer.PadTokenId, device);
        Tensor probabilities = model.forward(batch).softmax(-1).to(float32).cpu();     // [batch, classes]
        float[] flat = probabilities.data<float>().ToArray();
        int classes = Settings.ClassCount;
        var rows = new float[items.Count][];
        for (int r = 0; r < rows.Length; r++) rows[r] = flat.AsSpan(r * classes, classes).ToArray();
        return rows;
    }

    internal void CheckInput(DataViewSchema schema)
    {
        CheckTextColumn(schema, Settings.TextColumnName, "text");
        if (Settings.SecondTextColumnName is { } second) CheckTextColumn(schema, second, "second text");
    }

    internal static void CheckTextColumn(DataViewSchema schema, string name, string role)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"The {role} column '{name}' is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.");
        if (column.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(schema), $"The {role} column '{name}' must be text (string), but it is {column.Type}.");
    }

    /// <summary>Builds the network for <paramref name="settings"/> over <paramref name="encoder"/> (adapters injected in LoRA mode, fresh head).</summary>
    internal static TextClassificationModel BuildModel(Encoders.BertModel encoder, Integration.LoraModelSettings settings, double headDropout = 0.1)
    {
        if (settings.Mode == FineTuningMode.Lora) LoraInjector.Inject(encoder, settings.Lora);
        return new TextClassificationModel(encoder, settings.ClassCount, settings.Pooling, headDropout);
    }

    /// <summary>The weights a fit changed, by parameter name: adapters and head, the whole network, or the head alone.</summary>
    internal Dictionary<string, Tensor> TrainedWeights() => model.named_parameters()
        .Where(p => Settings.Mode switch
        {
            FineTuningMode.Full => true,
            FineTuningMode.HeadOnly => p.name.StartsWith("classifier.", StringComparison.Ordinal),
            _ => p.name.StartsWith("classifier.", StringComparison.Ordinal) || p.name.Contains(".lora_A.") || p.name.Contains(".lora_B."),
        })
        .ToDictionary(p => p.name, p => (Tensor)p.parameter);

    /// <summary>Copies saved <paramref name="weights"/> in by name; every trained weight must be present with its shape.</summary>
    internal void LoadTrainedWeights(IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        using var _ = no_grad();
        foreach (var (name, target) in TrainedWeights())
        {
            if (!weights.TryGetValue(name, out var saved))
                throw new InvalidDataException($"Weight '{name}' is missing from '{source}'.");
            if (!saved.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"Weight '{name}' in '{source}' has shape [{string.Join(", ", saved.shape)}] but the model expects [{string.Join(", ", target.shape)}].");
            target.copy_(saved);
        }
    }

    /// <summary>Disposes the network.</summary>
    public void Dispose() => model.Dispose();
}
