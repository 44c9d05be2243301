namespace MLNet.Lora.Training;

/// <summary>Optimisation settings of one fine-tune (what <see cref="FineTuningLoop"/> needs from the trainer's options).</summary>
internal sealed record FineTuningSettings
{
    /// <summary>Which weights train.</summary>
    public FineTuningMode Mode { get; init; } = FineTuningMode.Lora;

    /// <summary>Passes over the training set.</summary>
    public int MaxEpochs { get; init; } = 3;

    /// <summary>Examples per optimizer step.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>LoRA's default peak learning rate (the trainer's and the sweeps'; measured in docs/benchmarks.md).</summary>
    public const double DefaultLoraLearningRate = 2e-3;

    /// <summary>Peak learning rate of AdamW.</summary>
    public double LearningRate { get; init; } = DefaultLoraLearningRate;

    /// <summary>LoRA+ (Hayou et al. 2024): B's learning rate is this many times A's. 1 is plain LoRA.</summary>
    public double LoraPlusLearningRateRatio { get; init; } = 1;

    /// <summary>Decoupled weight decay; not applied to biases and LayerNorm weights.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Share of steps spent warming the learning rate up linearly; it then decays linearly to zero.</summary>
    public double WarmupRatio { get; init; } = 0.06;

    /// <summary>Gradient norm clipping threshold; 0 or less turns clipping off.</summary>
    public double MaxGradientNorm { get; init; } = 1.0;

    /// <summary>Stop when validation accuracy has not improved for this many epochs (needs a validation set); null never stops early.</summary>
    public int? EarlyStoppingPatience { get; init; }

    /// <summary>Group similar lengths into batches (pads less); false draws batches uniformly.</summary>
    public bool GroupByLength { get; init; } = true;

    /// <summary>Seed of shuffling, dropout and initialisation.</summary>
    public int Seed { get; init; }

    /// <summary>Maximum tokens per text the examples were encoded with (passed on to epoch-end callbacks).</summary>
    public int MaxSequenceLength { get; init; } = 128;

    /// <summary>
    /// Pad every training batch to this many tokens instead of to its longest item (null, the default). Only benchmarks
    /// use it, to measure what padding to the maximum length costs.
    /// </summary>
    internal int? PadToLength { get; init; }

    /// <summary>Report progress every this many steps.</summary>
    public int LogEveryNSteps { get; init; } = 20;
}
