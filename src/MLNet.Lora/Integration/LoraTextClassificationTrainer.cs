using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Integration;
using MLNet.Lora.Training;
using TorchSharp;

namespace MLNet.Lora;

/// <summary>
/// Fine-tunes a frozen pretrained BERT-family encoder with LoRA adapters (or fully, or head only) for text
/// classification, as an ML.NET estimator. The label must be a key column (use <c>MapValueToKey</c>).
/// </summary>
/// <example>
/// <code>
/// var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
///     .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(rank: 8, maxEpochs: 3))
///     .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
/// ITransformer model = pipeline.Fit(train);
/// ml.Model.SaveWithAdapters(model, train.Schema, "model.zip");
/// </code>
/// </example>
public sealed class LoraTextClassificationTrainer : IEstimator<LoraTextClassificationTransformer>
{
    private readonly IHostEnvironment env;
    private readonly Options options;
    private readonly LoraConfig lora;

    /// <summary>Creates the trainer. Prefer <c>mlContext.MulticlassClassification.Trainers.LoraTextClassification(...)</c>.</summary>
    public LoraTextClassificationTrainer(MLContext mlContext, Options options)
        : this((IHostEnvironment)mlContext, options)
    {
    }

    internal LoraTextClassificationTrainer(IHostEnvironment env, Options options)
    {
        this.env = env ?? throw new ArgumentNullException(nameof(env));
        this.options = options ?? throw new ArgumentNullException(nameof(options));
        lora = options.Validate();
    }

    /// <summary>Settings of <see cref="LoraTextClassificationTrainer"/>. Every field has a sensible default.</summary>
    public sealed class Options
    {
        /// <summary>The label column: a key type (add <c>MapValueToKey</c> before the trainer).</summary>
        public string LabelColumnName = DefaultColumnNames.Label;

        /// <summary>The text column.</summary>
        public string TextColumnName = DefaultColumnNames.Text;

        /// <summary>An optional second text column, for pair tasks (entailment, paraphrase): encoded as <c>[CLS] a [SEP] b [SEP]</c> with segment ids.</summary>
        public string? SecondTextColumnName;

        /// <summary>The output column of class probabilities.</summary>
        public string ScoreColumnName = DefaultColumnNames.Score;

        /// <summary>The output column of the predicted label (a key of the label's type).</summary>
        public string PredictedLabelColumnName = DefaultColumnNames.PredictedLabel;

        /// <summary>Where the base encoder comes from; default the embedded all-MiniLM-L6-v2.</summary>
        public EncoderSource BaseModel = EncoderSource.Default;

        /// <summary>An encoder already loaded; when set it is used instead of <see cref="BaseModel"/> (its weights are shared, never changed; full fine-tuning trains a copy).</summary>
        public PretrainedEncoder? Encoder;

        /// <summary>Folder of converted encoders; default a per-user cache (or the MLNET_LORA_CACHE environment variable).</summary>
        public string? CacheDirectory;

        /// <summary>Which weights train: LoRA adapters (default), every weight, or the head alone.</summary>
        public FineTuningMode Mode = FineTuningMode.Lora;

        /// <summary>LoRA rank r.</summary>
        public int Rank = 8;

        /// <summary>LoRA alpha; the update is scaled by alpha / r.</summary>
        public double Alpha = 16;

        /// <summary>Dropout on the adapters' input while training.</summary>
        public double LoraDropout = 0.05;

        /// <summary>Which linear layers get adapters; default query and value.</summary>
        public LoraTargetModules TargetModules = LoraTargetModules.Query | LoraTargetModules.Value;

        /// <summary>Rank-stabilised scaling alpha / √r (rsLoRA).</summary>
        public bool UseRsLora;

        /// <summary>
        /// A Hugging Face PEFT LoRA adapter folder (<c>adapter_config.json</c> and <c>adapter_model.safetensors</c> or
        /// <c>.bin</c>, as <see cref="LoraTextClassificationTransformer.SavePeftAdapter"/> writes) to start from instead of a
        /// fresh adapter. Its rank, alpha, target modules, rank and alpha patterns and rsLoRA replace <see cref="Rank"/>,
        /// <see cref="Alpha"/>, <see cref="TargetModules"/> and <see cref="UseRsLora"/> (<see cref="LoraDropout"/> still
        /// applies); its classification head is used too when it has as many classes as the data, else the head starts
        /// fresh. LoRA mode only.
        /// </summary>
        public string? InitialAdapter;

        /// <summary>LoRA+: B's learning rate is this many times A's (the paper suggests 16); 1 is plain LoRA.</summary>
        public double LoraPlusLearningRateRatio = 1;

        /// <summary>How token states are pooled for the head; mean suits sentence-transformers encoders such as the default.</summary>
        public PoolingStrategy Pooling = PoolingStrategy.Mean;

        /// <summary>Dropout before the classification head while training.</summary>
        public double HeadDropout = 0.1;

        /// <summary>
        /// Dropout on the encoder's attention probabilities while training; null keeps the checkpoint's (0.1 for BERT and
        /// the default MiniLM), as Hugging Face does. 0 lets a CPU step use the fused attention kernel, which has no
        /// dropout on the CPU: LoRA steps of the default model at 128 tokens are then about 14% faster and need less
        /// memory; on short texts the difference vanishes (docs/benchmarks.md).
        /// </summary>
        public double? AttentionDropout;

        /// <summary>
        /// Recompute each encoder layer in backward instead of keeping its activations (Hugging Face's gradient
        /// checkpointing): the live activations of one layer instead of all, for about a third more step time. How much
        /// of that shows in the process's peak memory depends on the allocator (docs/benchmarks.md). CPU only.
        /// </summary>
        public bool GradientCheckpointing;

        /// <summary>
        /// Tasks whose knowledge the fit should keep (for instance what the base model is used for elsewhere): what EWC's
        /// Fisher is estimated on and what a <see cref="ForgettingBudget"/> measures. Each is read out by a linear probe
        /// fitted on the model before training (see <see cref="Forgetting.ForgettingEvaluator"/>) on at most 1,000 of its rows;
        /// the budget's checks read <see cref="Training.ForgettingBudget.MaxCheckRows"/> held-out rows of each.
        /// </summary>
        public IReadOnlyList<Forgetting.ForgettingTask>? RetentionTasks;

        /// <summary>
        /// Experience replay (see <see cref="Training.Rehearsal"/>): rows of earlier tasks mixed into every batch, each
        /// old task through a head of its own that trains along (and is dropped after the fit); null for none.
        /// </summary>
        public Rehearsal? Rehearsal;

        /// <summary>L2-SP (<see cref="FineTuningMode.Full"/> or <see cref="FineTuningMode.Lora"/>) or EWC (needs <see cref="RetentionTasks"/>); null for none.</summary>
        public RetentionPenalty? RetentionPenalty;

        /// <summary>
        /// O-LoRA: earlier adapters (<c>SaveWithAdapters</c> zips or PEFT folders over the same base and target modules)
        /// whose input subspaces the new adapter's A is held orthogonal to, with strength
        /// <see cref="OrthogonalityStrength"/>. LoRA mode only; null for none.
        /// </summary>
        public IReadOnlyList<string>? OrthogonalTo;

        /// <summary>O-LoRA's λ for <see cref="OrthogonalTo"/> (the paper's 0.5 by default).</summary>
        public double OrthogonalityStrength = 0.5;

        /// <summary>
        /// Stop once the <see cref="RetentionTasks"/>' probe accuracy has dropped by more than the budget and keep the best
        /// checkpoint within it; what happened is in <see cref="LoraTextClassificationTransformer.ForgettingBudgetOutcome"/>. Null for none.
        /// </summary>
        public ForgettingBudget? ForgettingBudget;

        /// <summary>Passes over the training data.</summary>
        public int MaxEpochs = 3;

        /// <summary>Examples per optimizer step.</summary>
        public int BatchSize = 32;

        /// <summary>
        /// Peak learning rate; null picks the mode's default: LoRA 2e-3, full 5e-5, head only 5e-3 (LoRA's choice is
        /// measured in docs/benchmarks.md).
        /// </summary>
        public double? LearningRate;

        /// <summary>AdamW's decoupled weight decay (not on biases or LayerNorm).</summary>
        public double WeightDecay = 0.01;

        /// <summary>Share of steps for linear warm-up; the rate then decays linearly to zero.</summary>
        public double WarmupRatio = 0.06;

        /// <summary>Gradient-norm clipping threshold; 0 turns clipping off.</summary>
        public double MaxGradientNorm = 1.0;

        /// <summary>Tokens per text, special tokens included; longer texts are truncated (and counted in the log).</summary>
        public int MaxSequenceLength = 128;

        /// <summary>Share of the training rows held out (seeded) for validation each epoch; 0 uses none.</summary>
        public double ValidationFraction;

        /// <summary>With validation data: stop after this many epochs without improvement; the best epoch's weights are kept either way.</summary>
        public int? EarlyStoppingPatience;

        /// <summary>Group texts of similar length into batches (pads less). False pads uniformly drawn batches.</summary>
        public bool GroupByLength = true;

        /// <summary>Benchmarks only: pad every training batch to <see cref="MaxSequenceLength"/> (what a fixed-shape trainer does) instead of to its longest text.</summary>
        internal bool PadToMaxSequenceLength;

        /// <summary>Rows per forward pass when scoring.</summary>
        public int InferenceBatchSize = 64;

        /// <summary>Merge the trained adapters into the inference weights when training ends (explicitly, via <see cref="LoraTextClassificationTransformer.MergeAdapters"/>).</summary>
        public bool MergeAdaptersAfterTraining = true;

        /// <summary>
        /// Seed of shuffling, dropout and initialisation; null draws one from the <see cref="MLContext"/>'s seed. Results are
        /// reproducible when one fit runs at a time in a process: libtorch's random generator is process-wide.
        /// </summary>
        public int? Seed;

        /// <summary>Receives progress (epoch, step, loss, learning rate, validation metrics, throughput, time left).</summary>
        public IProgress<LoraTrainingProgress>? Progress;

        /// <summary>Called after each epoch with the model between epochs (the forgetting monitor hooks in here).</summary>
        public Action<EpochEndedContext>? EpochEnded;

        /// <summary>Cancels training.</summary>
        public CancellationToken CancellationToken;

        /// <summary>The learning rate in use: <see cref="LearningRate"/> or the mode's default.</summary>
        public double EffectiveLearningRate => LearningRate ?? Mode switch
        {
            FineTuningMode.Full => 5e-5,
            FineTuningMode.HeadOnly => 5e-3,
            _ => FineTuningSettings.DefaultLoraLearningRate,
        };

        /// <summary>Checks every setting, naming the first invalid one, and builds the adapter's <see cref="Adapters.LoraConfig"/>, the one description of it that training, the model and its files use.</summary>
        internal LoraConfig Validate()
        {
            static void Check(bool ok, string name, object? value, string rule)
            {
                if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{nameof(Options)}.{name} {rule} (was {value}).");
            }
            Check(!string.IsNullOrWhiteSpace(LabelColumnName), nameof(LabelColumnName), LabelColumnName, "must name a column");
            Check(!string.IsNullOrWhiteSpace(TextColumnName), nameof(TextColumnName), TextColumnName, "must name a column");
            Check(!string.IsNullOrWhiteSpace(ScoreColumnName), nameof(ScoreColumnName), ScoreColumnName, "must name a column");
            Check(!string.IsNullOrWhiteSpace(PredictedLabelColumnName), nameof(PredictedLabelColumnName), PredictedLabelColumnName, "must name a column");
            Check(HeadDropout >= 0 && HeadDropout < 1, nameof(HeadDropout), HeadDropout, "must be in [0, 1)");
            Check(AttentionDropout is null || (AttentionDropout >= 0 && AttentionDropout < 1), nameof(AttentionDropout), AttentionDropout, "must be in [0, 1)");
            Check(InitialAdapter is null || (Mode == FineTuningMode.Lora && !string.IsNullOrWhiteSpace(InitialAdapter)), nameof(InitialAdapter), InitialAdapter,
                $"needs {nameof(Mode)} = {nameof(FineTuningMode.Lora)} and a folder");
            Check(LoraPlusLearningRateRatio > 0, nameof(LoraPlusLearningRateRatio), LoraPlusLearningRateRatio, "must be positive");
            Check(MaxEpochs > 0, nameof(MaxEpochs), MaxEpochs, "must be positive");
            Check(BatchSize > 0, nameof(BatchSize), BatchSize, "must be positive");
            Check(LearningRate is null || (LearningRate > 0 && double.IsFinite(LearningRate.Value)), nameof(LearningRate), LearningRate, "must be positive");
            Check(WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "must not be negative");
            Check(WarmupRatio >= 0 && WarmupRatio < 1, nameof(WarmupRatio), WarmupRatio, "must be in [0, 1)");
            Check(MaxGradientNorm >= 0, nameof(MaxGradientNorm), MaxGradientNorm, "must not be negative");
            Check(MaxSequenceLength >= 8, nameof(MaxSequenceLength), MaxSequenceLength, "must be at least 8");
            Check(ValidationFraction >= 0 && ValidationFraction < 1, nameof(ValidationFraction), ValidationFraction, "must be in [0, 1)");
            Check(EarlyStoppingPatience is null or > 0, nameof(EarlyStoppingPatience), EarlyStoppingPatience, "must be positive");
            Check(InferenceBatchSize > 0, nameof(InferenceBatchSize), InferenceBatchSize, "must be positive");
            RetentionOptions.Validate(this);
            ArgumentNullException.ThrowIfNull(BaseModel, nameof(BaseModel));
            try
            {
                return new LoraConfig { Rank = Rank, Alpha = Alpha, Dropout = LoraDropout, TargetModules = TargetModules, UseRsLora = UseRsLora };
            }
            catch (ArgumentOutOfRangeException e) when (e.ParamName is { } setting)
            {
                // The config checks its own settings; name them as this class does.
                string field = setting == nameof(LoraConfig.Dropout) ? nameof(LoraDropout) : setting;
                throw new ArgumentOutOfRangeException(field, e.ActualValue, $"{nameof(Options)}.{field} {LoraConfig.RuleOf(setting)} (was {e.ActualValue}).");
            }
        }
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        TextClassifierScoring.CheckTextColumn(inputSchema, options.TextColumnName, "text");
        if (options.SecondTextColumnName is { } second) TextClassifierScoring.CheckTextColumn(inputSchema, second, "second text");
        if (TextClassifierScoring.Find(inputSchema, options.LabelColumnName) is not { } label)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The label column '{options.LabelColumnName}' is not in the data.");
        if (!label.IsKey)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), LabelNotKeyMessage(options.LabelColumnName, $"{label.ItemType}"));
        return TextClassifierScoring.OutputShape(inputSchema, options.ScoreColumnName, options.PredictedLabelColumnName, label.Annotations);
    }

    /// <summary>Trains on <paramref name="input"/>.</summary>
    public LoraTextClassificationTransformer Fit(IDataView input) => Fit(input, validationData: null);

    /// <summary>Trains on <paramref name="trainData"/>, validating each epoch on <paramref name="validationData"/> (same schema), keeping the best epoch.</summary>
    public LoraTextClassificationTransformer Fit(IDataView trainData, IDataView? validationData)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        var host = env.Register("LoraTextClassification");
        int seed = options.Seed ?? host.Rand.Next();
        using var channel = host.Start("Training");

        var labelColumn = TrainingData.CheckLabel(trainData.Schema, options.LabelColumnName);
        TextClassifierScoring.CheckTextColumn(trainData.Schema, options.TextColumnName, "text");
        if (options.SecondTextColumnName is { } second) TextClassifierScoring.CheckTextColumn(trainData.Schema, second, "second text");

        var rows = TrainingData.Read(trainData, options, channel);
        int classCount = (int)((KeyDataViewType)labelColumn.Type).Count;
        TrainingData.CheckClasses(rows.Labels, classCount, options.LabelColumnName);
        if (validationData is not null)
        {
            TrainingData.CheckValidationLabel(labelColumn, validationData.Schema, options.LabelColumnName);
            TextClassifierScoring.CheckTextColumn(validationData.Schema, options.TextColumnName, "validation text");
            if (options.SecondTextColumnName is { } validationSecond) TextClassifierScoring.CheckTextColumn(validationData.Schema, validationSecond, "validation second text");
        }
        var validationRows = validationData is null ? null : TrainingData.Read(validationData, options, channel);
        if (validationRows is null && options.ValidationFraction > 0) (rows, validationRows) = rows.Split(options.ValidationFraction, seed);

        var device = MLContextAccess.Device(env);
        if (options.GradientCheckpointing && device.type != DeviceType.CPU)
            throw new NotSupportedException($"{nameof(Options)}.{nameof(Options.GradientCheckpointing)} runs on the CPU only (it replays dropout from the CPU generator); this MLContext trains on {device}.");
        var shared = LoadEncoder(channel);
        var (tokenizer, identity) = (shared.Tokenizer, shared.Identity);
        var encoderModel = shared.CreateEncoder(frozen: options.Mode != FineTuningMode.Full);
        if (options.MaxSequenceLength > encoderModel.Config.MaxPositionEmbeddings)
        {
            encoderModel.Dispose();
            throw new ArgumentOutOfRangeException(nameof(Options.MaxSequenceLength), options.MaxSequenceLength,
                $"{nameof(Options)}.{nameof(Options.MaxSequenceLength)} is {options.MaxSequenceLength}, but the base encoder '{identity.Name}' has " +
                $"{encoderModel.Config.MaxPositionEmbeddings} positions (max_position_embeddings): set it to {encoderModel.Config.MaxPositionEmbeddings} or less.");
        }
        if (options.AttentionDropout is { } attentionDropout) encoderModel.AttentionDropout = attentionDropout;   // a copy or our own load
        encoderModel.GradientCheckpointing = options.GradientCheckpointing;
        TextClassificationModel? model = null;
        Peft.PeftAdapter? initial = null;
        try
        {
            initial = options.InitialAdapter is { } folder ? Peft.PeftAdapterFolder.Read(folder, encoderModel) : null;
            if (initial is not null) Peft.PeftAdapterFolder.CheckBase(initial, options.InitialAdapter!, identity);
            var modelSettings = new LoraModelSettings
            {
                TextColumnName = options.TextColumnName,
                SecondTextColumnName = options.SecondTextColumnName,
                ScoreColumnName = options.ScoreColumnName,
                PredictedLabelColumnName = options.PredictedLabelColumnName,
                LabelColumnName = options.LabelColumnName,
                Mode = options.Mode,
                Lora = initial is null ? lora : initial.Config with { Dropout = options.LoraDropout },
                Pooling = options.Pooling,
                MaxSequenceLength = options.MaxSequenceLength,
                InferenceBatchSize = options.InferenceBatchSize,
                Classes = ClassKeyValues.Read(labelColumn),
                ClassCount = classCount,
                BaseEncoder = identity,
            };
            torch.random.manual_seed(seed);
            model = LoraTextClassificationTransformer.BuildModel(encoderModel, modelSettings, options.HeadDropout);
            if (initial is not null)
            {
                bool sameClasses = initial.ClassCount == classCount;
                initial.CopyInto(model, copyHead: sameClasses);
                channel.Info(MessageSensitivity.None, $"Starting from the adapter in '{options.InitialAdapter}'" +
                             (sameClasses ? " and its head." : $"; its head ({initial.ClassCount?.ToString() ?? "none"} classes, not {classCount}) is not used."));
                initial.Dispose();
            }
            model.to(device);
            FineTuningLoop.PrepareParameters(model, options.Mode);

            var train = rows.Encode(tokenizer, options.MaxSequenceLength);
            var validation = validationRows?.Encode(tokenizer, options.MaxSequenceLength);
            int replaced = train.ReplacedInvalidTextCount + (validation?.ReplacedInvalidTextCount ?? 0);
            if (replaced > 0)
                channel.Warning(MessageSensitivity.None, $"{replaced} texts held invalid UTF-16 (lone surrogates), replaced by U+FFFD before tokenizing.");
            if (train.TruncatedCount > 0)
                channel.Info(MessageSensitivity.None, $"{train.TruncatedCount} of {train.Count} training texts were longer than {options.MaxSequenceLength} tokens and were truncated.");
            channel.Info(MessageSensitivity.None, $"Fine-tuning {identity.Name} ({options.Mode}) on {train.Count} rows, {classCount} classes, " +
                         $"{model.parameters().Where(p => p.requires_grad).Sum(p => p.numel()):N0} trainable parameters, device {device}.");
            channel.Info(MessageSensitivity.None, $"{Native.TorchRuntime.Threads}.");

            var settings = new FineTuningSettings
            {
                Mode = options.Mode,
                MaxEpochs = options.MaxEpochs,
                BatchSize = options.BatchSize,
                LearningRate = options.EffectiveLearningRate,
                LoraPlusLearningRateRatio = options.LoraPlusLearningRateRatio,
                WeightDecay = options.WeightDecay,
                WarmupRatio = options.WarmupRatio,
                MaxGradientNorm = options.MaxGradientNorm,
                EarlyStoppingPatience = options.EarlyStoppingPatience,
                GroupByLength = options.GroupByLength,
                MaxSequenceLength = options.MaxSequenceLength,
                PadToLength = options.PadToMaxSequenceLength ? options.MaxSequenceLength : null,
                Seed = seed,
            };
            using var retention = RetentionOptions.Build(options, model, tokenizer, shared, device, seed, channel);
            var loop = new FineTuningLoop(model, tokenizer, settings, device, message => channel.Info(MessageSensitivity.None, message), retention);
            var history = loop.Run(train, validation, options.Progress, options.EpochEnded, options.CancellationToken);

            var transformer = new LoraTextClassificationTransformer(env, model, shared, modelSettings, device)
            {
                TrainingHistory = history,
                ForgettingBudgetOutcome = loop.BudgetOutcome,
            };
            if (options.MergeAdaptersAfterTraining && options.Mode == FineTuningMode.Lora) transformer.MergeAdapters();
            return transformer;
        }
        catch
        {
            initial?.Dispose();
            if (model is not null) model.Dispose(); else encoderModel.Dispose();
            throw;
        }
    }

    /// <summary>The base to fine-tune over, shared with every model over the same weights: <see cref="Options.Encoder"/>'s, or one loaded from <see cref="Options.BaseModel"/>.</summary>
    private SharedBaseEncoder LoadEncoder(IChannel channel)
    {
        if (options.Encoder is { } given) return SharedBaseEncoder.For(given);
        channel.Info(MessageSensitivity.None, $"Loading the base encoder from {options.BaseModel}.");
        var cache = options.CacheDirectory is null ? null : new CheckpointCache(options.CacheDirectory);
        using var loaded = PretrainedEncoder.Load(options.BaseModel, cache);
        return SharedBaseEncoder.For(loaded, loadedToShare: true);
    }

    internal static string LabelNotKeyMessage(string column, string type) =>
        $"The label column '{column}' must be a key type, but it is {type}. Add mlContext.Transforms.Conversion.MapValueToKey(\"{column}\") before the trainer.";
}
