using System.CommandLine;
using System.Globalization;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Cli.Data;
using MLNet.Lora.Encoders;
using MLNet.Lora.Sweeps;
using MLNet.Lora.Training;

namespace MLNet.Lora.Cli;

/// <summary>
/// The trainer options a shell user sets, as command-line options, bound onto <see cref="LoraTextClassificationTrainer.Options"/>.
/// <c>train</c> has them all; <c>sweep plan</c> leaves out the ones the sweep varies (rank, alpha, target modules, learning rate).
/// </summary>
internal sealed class TrainerOptionSet
{
    private readonly bool swept;

    public TrainerOptionSet(bool sweptByTheCaller)
    {
        swept = sweptByTheCaller;
    }

    public Option<string> BaseModel { get; } = new("--base-model")
    {
        Description = "The pretrained encoder: 'default' (the embedded all-MiniLM-L6-v2), a Hugging Face model folder, or an ONNX file (with --vocab).",
        DefaultValueFactory = _ => "default",
    };

    public Option<FileInfo?> Vocabulary { get; } = new("--vocab") { Description = "The vocab.txt of an ONNX --base-model." };

    public Option<string?> CacheDirectory { get; } = new("--cache-dir") { Description = "Folder of converted encoders (default: a per-user cache, or MLNET_LORA_CACHE)." };

    public Option<FineTuningMode?> Mode { get; } = new("--mode") { Description = "What trains: Lora (default), Full, or HeadOnly." };

    public Option<int?> Rank { get; } = CommonOptions.PositiveInt("--rank", "LoRA rank r (default 8).", "-r");

    public Option<double?> Alpha { get; } = new("--alpha") { Description = "LoRA alpha; the update is scaled by alpha / r (default 16)." };

    public Option<string?> TargetModules { get; } = new("--target-modules")
    {
        Description = "Adapted layers, comma-separated: Query, Key, Value, AttentionOutput, Intermediate, Output, AllAttention, All (default Query,Value).",
    };

    public Option<double?> LearningRate { get; } = new("--learning-rate", "--lr") { Description = "Peak learning rate (default 2e-3 for LoRA, 5e-5 full, 5e-3 head only)." };

    public Option<int?> Epochs { get; } = CommonOptions.PositiveInt("--epochs", "Passes over the training data (default 3).", "-e");

    public Option<int?> BatchSize { get; } = CommonOptions.PositiveInt("--batch-size", "Examples per optimizer step (default 32).");

    public Option<int?> MaxSequenceLength { get; } = CommonOptions.PositiveInt("--max-seq-len", "Tokens per text; longer texts are truncated (default 128).");

    public Option<double?> LoraDropout { get; } = new("--lora-dropout") { Description = "Dropout on the adapters' input (default 0.05)." };

    public Option<bool> RsLora { get; } = new("--rslora") { Description = "Rank-stabilised scaling alpha / sqrt(r)." };

    public Option<double?> LoraPlusRatio { get; } = new("--lora-plus-ratio") { Description = "LoRA+: B's learning rate over A's (the paper suggests 16; default 1)." };

    public Option<PoolingStrategy?> Pooling { get; } = new("--pooling") { Description = "How token states are pooled for the head: Mean (default) or Cls." };

    public Option<double?> WeightDecay { get; } = new("--weight-decay") { Description = "AdamW weight decay (default 0.01)." };

    public Option<double?> WarmupRatio { get; } = new("--warmup-ratio") { Description = "Share of steps for linear warm-up (default 0.06)." };

    public Option<double?> MaxGradientNorm { get; } = new("--max-grad-norm") { Description = "Gradient clipping threshold; 0 turns it off (default 1)." };

    public Option<double?> Validation { get; } = CommonOptions.Number("--validation-fraction",
        "Share of the training rows held out for validation when no --validation-dataset is given (default 0).", v => v >= 0 && v < 1, "in [0, 1)");

    public Option<int?> EarlyStopping { get; } = CommonOptions.PositiveInt("--early-stopping-patience", "With validation data: stop after this many epochs without improvement.");

    public Option<bool> GradientCheckpointing { get; } = new("--gradient-checkpointing") { Description = "Recompute activations in the backward pass: less memory, about a third more time." };

    public Option<int?> Seed { get; } = new("--seed") { Description = "Seed of shuffling, dropout and initialisation (default: from the process's ML.NET context)." };

    public void AddTo(Command command)
    {
        Option[] all = swept
            ? [BaseModel, Vocabulary, CacheDirectory, Epochs, BatchSize, MaxSequenceLength, LoraDropout, RsLora, LoraPlusRatio, Pooling, WeightDecay, WarmupRatio, MaxGradientNorm, Validation, EarlyStopping, GradientCheckpointing, Seed]
            : [BaseModel, Vocabulary, CacheDirectory, Mode, Rank, Alpha, TargetModules, LearningRate, Epochs, BatchSize, MaxSequenceLength, LoraDropout, RsLora, LoraPlusRatio, Pooling, WeightDecay, WarmupRatio, MaxGradientNorm, Validation, EarlyStopping, GradientCheckpointing, Seed];
        foreach (var option in all) command.Add(option);
    }

    /// <summary>The trainer options the command line sets, over the trainer's defaults; checked by the trainer's own validation.</summary>
    public LoraTextClassificationTrainer.Options Bind(ParseResult parse, TextColumns columns)
    {
        var options = new LoraTextClassificationTrainer.Options
        {
            LabelColumnName = columns.Label ?? "Label",
            TextColumnName = columns.Text,
            SecondTextColumnName = columns.SecondText,
            BaseModel = ParseBaseModel(parse.GetValue(BaseModel)!, parse.GetValue(Vocabulary)),
            CacheDirectory = parse.GetValue(CacheDirectory),
        };
        if (!swept)
        {
            if (parse.GetValue(Mode) is { } mode) options.Mode = mode;
            if (parse.GetValue(Rank) is { } rank) options.Rank = rank;
            if (parse.GetValue(Alpha) is { } alpha) options.Alpha = alpha;
            if (parse.GetValue(TargetModules) is { } modules) options.TargetModules = ParseModules(modules);
            if (parse.GetValue(LearningRate) is { } rate) options.LearningRate = rate;
        }
        if (parse.GetValue(Epochs) is { } epochs) options.MaxEpochs = epochs;
        if (parse.GetValue(BatchSize) is { } batch) options.BatchSize = batch;
        if (parse.GetValue(MaxSequenceLength) is { } length) options.MaxSequenceLength = length;
        if (parse.GetValue(LoraDropout) is { } dropout) options.LoraDropout = dropout;
        options.UseRsLora = parse.GetValue(RsLora);
        if (parse.GetValue(LoraPlusRatio) is { } ratio) options.LoraPlusLearningRateRatio = ratio;
        if (parse.GetValue(Pooling) is { } pooling) options.Pooling = pooling;
        if (parse.GetValue(WeightDecay) is { } decay) options.WeightDecay = decay;
        if (parse.GetValue(WarmupRatio) is { } warmup) options.WarmupRatio = warmup;
        if (parse.GetValue(MaxGradientNorm) is { } norm) options.MaxGradientNorm = norm;
        if (parse.GetValue(Validation) is { } fraction) options.ValidationFraction = fraction;
        options.EarlyStoppingPatience = parse.GetValue(EarlyStopping);
        options.GradientCheckpointing = parse.GetValue(GradientCheckpointing);
        options.Seed = parse.GetValue(Seed);
        return options;
    }

    /// <summary><c>default</c>, a Hugging Face folder, or an ONNX file (which needs its vocabulary).</summary>
    public static EncoderSource ParseBaseModel(string text, FileInfo? vocabulary)
    {
        if (text.Equals("default", StringComparison.OrdinalIgnoreCase)) return EncoderSource.Default;
        if (Directory.Exists(text)) return EncoderSource.HuggingFaceFolder(Path.GetFullPath(text));
        if (File.Exists(text) && text.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            string vocab = vocabulary?.FullName ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(text))!, "vocab.txt");
            if (!File.Exists(vocab)) throw new CliException($"--base-model '{text}' is an ONNX file: give its vocabulary with --vocab (no '{vocab}').");
            return EncoderSource.Onnx(Path.GetFullPath(text), vocab);
        }
        throw new CliException($"--base-model '{text}' is neither 'default', a Hugging Face model folder, nor an .onnx file.");
    }

    public static LoraTargetModules ParseModules(string text)
    {
        try
        {
            return LoraTrialSettings.ParseModules(text);
        }
        catch (FormatException e)
        {
            throw new CliException($"--target-modules: {e.Message}");
        }
    }

    public static string Describe(LoraTextClassificationTrainer.Options o) => string.Create(CultureInfo.InvariantCulture,
        $"{o.Mode}, rank {o.Rank}, alpha {o.Alpha}, modules {LoraTrialSettings.FormatModules(o.TargetModules)}, lr {o.EffectiveLearningRate:G3}, {o.MaxEpochs} epochs, batch {o.BatchSize}, max {o.MaxSequenceLength} tokens, base {o.BaseModel}");
}
