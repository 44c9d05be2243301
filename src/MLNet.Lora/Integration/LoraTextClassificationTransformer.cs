using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Integration;
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
/// <remarks>
/// <para>
/// Memory: the network lives in native (libtorch) memory. The frozen base encoder is shared by every model over the
/// same base in the process (held once, by SHA-256); each model owns only its adapters and head (in full fine-tuning,
/// its whole encoder). Everything is reclaimed by the garbage collector once the model is unreachable.
/// </para>
/// <para>
/// <see cref="Dispose"/> frees the model's native memory now, but never breaks the model: ML.NET disposes the model a
/// <c>PredictionEngine</c> was built on when the engine is disposed (and <c>PredictionEnginePool</c> does so too), so
/// a disposed model keeps its trained weights in managed memory and rebuilds its network on its next use. Disposal
/// waits for scoring in progress to finish.
/// </para>
/// </remarks>
public sealed partial class LoraTextClassificationTransformer : ITransformer, IDisposable
{
    private readonly SharedBaseEncoder baseEncoder;
    private readonly Device device;
    private readonly object gate = new();
    private TextClassificationModel? model;
    private TrainedState? released;
    private int users;
    private bool releaseRequested;

    internal LoraTextClassificationTransformer(IHostEnvironment env, TextClassificationModel model, SharedBaseEncoder baseEncoder,
        LoraModelSettings settings, Device device)
    {
        Environment = env;
        this.model = model;
        this.baseEncoder = baseEncoder;
        this.device = device;
        Settings = settings;
        model.eval();
    }

    /// <summary>Columns, adapter settings, classes and base encoder identity.</summary>
    public LoraModelSettings Settings { get; }

    /// <summary>
    /// The network: the encoder with its adapters, and the head (rebuilt if the model was disposed). It stays valid until
    /// the model is disposed (which a <c>PredictionEngine</c> built on it does when it is disposed).
    /// </summary>
    public TextClassificationModel Model
    {
        get
        {
            lock (gate) return Live();
        }
    }

    /// <summary>The tokenizer of the base encoder.</summary>
    public BertTextTokenizer Tokenizer => baseEncoder.Tokenizer;

    internal SharedBaseEncoder BaseEncoder => baseEncoder;

    /// <summary>Number of parameters that were trained (adapters and head, or everything in full fine-tuning).</summary>
    public long TrainedParameterCount
    {
        get
        {
            using var lease = Use();
            return TrainedWeights().Values.Sum(t => t.numel());
        }
    }

    /// <summary>The per-epoch figures of the fit that produced this model (empty after loading).</summary>
    public IReadOnlyList<EpochSummary> TrainingHistory { get; init; } = [];

    /// <summary>
    /// What the trainer's <see cref="LoraTextClassificationTrainer.Options.ForgettingBudget"/> did: every check, whether it
    /// stopped training, and the step kept. Null when the fit had no budget (and after loading from a file).
    /// </summary>
    public ForgettingBudgetOutcome? ForgettingBudgetOutcome { get; init; }

    internal IHostEnvironment Environment { get; }

    /// <summary>Whether the adapters are merged into the inference weights.</summary>
    public bool AdaptersMerged
    {
        get
        {
            lock (gate) return model is null ? released!.Merged : LoraInjector.FindLoraLayers(model.Encoder).Any(l => l.Layer.IsMerged);
        }
    }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <summary>Folds the adapters into copies of the adapted weights: same outputs, no extra latency. The base stays untouched.</summary>
    public void MergeAdapters()
    {
        using var lease = Use();
        LoraInjector.Merge(lease.Model.Encoder);
    }

    /// <summary>Undoes <see cref="MergeAdapters"/>.</summary>
    public void UnmergeAdapters()
    {
        using var lease = Use();
        LoraInjector.Unmerge(lease.Model.Encoder);
    }

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => TextClassifierScoring.OutputSchema(inputSchema,
        Settings.TextColumnName, Settings.SecondTextColumnName, Settings.ScoreColumnName, Settings.PredictedLabelColumnName, Settings.ClassCount, Settings.Classes);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new ScoredDataView(this, input);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoringRowMapper(this, inputSchema);

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
        for (int i = 0; i < encoded.Length; i++) encoded[i] = Tokenizer.Encode(texts[i], pairs?[i], Settings.MaxSequenceLength);
        if (encoded.Count(e => e.ReplacedInvalidText) is > 0 and var replaced)
        {
            using var channel = Environment.Start(nameof(LoraTextClassificationTransformer));
            channel.Warning(MessageSensitivity.None, $"{replaced} of {encoded.Length} texts held invalid UTF-16 (lone surrogates), replaced by U+FFFD before scoring.");
        }
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
        using var lease = Use();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var batch = TokenBatch.Collate(items, Tokenizer.PadTokenId, device);
        Tensor probabilities = lease.Model.forward(batch).softmax(-1).to(float32).cpu();     // [batch, classes]
        float[] flat = probabilities.data<float>().ToArray();
        int classes = Settings.ClassCount;
        var rows = new float[items.Count][];
        for (int r = 0; r < rows.Length; r++) rows[r] = flat.AsSpan(r * classes, classes).ToArray();
        return rows;
    }

    /// <summary>Builds the network for <paramref name="settings"/> over <paramref name="encoder"/> (adapters injected in LoRA mode, fresh head).</summary>
    internal static TextClassificationModel BuildModel(Encoders.BertModel encoder, Integration.LoraModelSettings settings, double headDropout = 0.1)
    {
        if (settings.Mode == FineTuningMode.Lora) LoraInjector.Inject(encoder, settings.Lora);
        return new TextClassificationModel(encoder, settings.ClassCount, settings.Pooling, headDropout);
    }

    /// <summary>
    /// The weights a fit changed, by parameter name: adapters and head, the whole network, or the head alone. They are
    /// the live network's: hold a <see cref="Use"/> lease while using them.
    /// </summary>
    internal Dictionary<string, Tensor> TrainedWeights() => Live().TrainedWeights(Settings.Mode);

    /// <summary>
    /// Copies saved <paramref name="weights"/> in by name; every trained weight must be present with its shape, and
    /// finite (a damaged file must not load as a model that scores NaN).
    /// </summary>
    internal void LoadTrainedWeights(IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        using var lease = Use();
        using var _ = no_grad();
        foreach (var (name, target) in TrainedWeights())
        {
            if (!weights.TryGetValue(name, out var saved))
                throw new InvalidDataException($"Weight '{name}' is missing from {source}.");
            if (!saved.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"Weight '{name}' in {source} has shape [{string.Join(", ", saved.shape)}] but the model expects [{string.Join(", ", target.shape)}].");
            if (!saved.isfinite().all().item<bool>())
                throw new InvalidDataException($"Weight '{name}' in {source} holds NaN or infinite values; the file is damaged or the model diverged before it was saved.");
            target.copy_(saved);
        }
    }

    /// <summary>
    /// Frees the network's native memory now (the shared base stays while other models use it). The model stays
    /// usable: its trained weights are kept in managed memory and the network is rebuilt on the next use, because ML.NET
    /// disposes a model whenever a <c>PredictionEngine</c> built on it is disposed. Scoring in progress finishes first.
    /// </summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (model is null) return;
            releaseRequested = true;
            if (users == 0) Release();
        }
    }

    /// <summary>Marks the network in use until the lease is disposed, so that <see cref="Dispose"/> waits for it.</summary>
    internal Lease Use()
    {
        lock (gate)
        {
            var live = Live();
            users++;
            return new Lease(this, live);
        }
    }

    /// <summary>A use of the network; see <see cref="Use"/>.</summary>
    internal readonly struct Lease(LoraTextClassificationTransformer owner, TextClassificationModel model) : IDisposable
    {
        public TextClassificationModel Model => model;

        public void Dispose()
        {
            lock (owner.gate)
            {
                if (--owner.users == 0 && owner.releaseRequested) owner.Release();
            }
        }
    }

    /// <summary>The network, rebuilt from the shared base and the kept weights if it was released. Call under the gate.</summary>
    private TextClassificationModel Live()
    {
        if (model is not null) return model;
        var state = released!;
        var network = BuildModel(baseEncoder.CreateEncoder(frozen: Settings.Mode != FineTuningMode.Full), Settings);
        try
        {
            network.to(device);
            model = network;
            using (var scope = NewDisposeScope())
            {
                var weights = state.ToTensors();
                LoadTrainedWeights(weights, "the weights kept when the model was disposed");
            }
            if (state.Merged) LoraInjector.Merge(network.Encoder);
            network.eval();
            released = null;
            return network;
        }
        catch
        {
            model = null;
            network.Dispose();
            throw;
        }
    }

    /// <summary>Keeps the trained weights in managed memory and frees the network. Call under the gate.</summary>
    private void Release()
    {
        var network = model!;
        bool merged = LoraInjector.FindLoraLayers(network.Encoder).Any(l => l.Layer.IsMerged);
        released = TrainedState.From(TrainedWeights(), merged);
        model = null;
        releaseRequested = false;
        network.Dispose();
    }

    /// <summary>Trained weights held in managed memory while the network is released.</summary>
    private sealed record TrainedState(Dictionary<string, (float[] Values, long[] Shape)> Weights, bool Merged)
    {
        public static TrainedState From(Dictionary<string, Tensor> weights, bool merged) => new(
            weights.ToDictionary(w => w.Key, w =>
            {
                using var cpu = w.Value.detach().to(float32).cpu().contiguous();
                return (cpu.data<float>().ToArray(), w.Value.shape);
            }),
            merged);

        /// <summary>The weights as CPU tensors, in the caller's dispose scope.</summary>
        public Dictionary<string, Tensor> ToTensors() => Weights.ToDictionary(w => w.Key, w => tensor(w.Value.Values, w.Value.Shape));
    }
}
