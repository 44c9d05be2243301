using MLNet.Lora.Adapters;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Training;

namespace ForgettingStudy;

/// <summary>What the study runs: the task sequences, the methods, and the sequence settings shared by every method.</summary>
internal static class StudyPlan
{
    public static readonly string[] SequenceNames = ["sst2-ag_news-emotion", "banking77-sms_spam-emotion"];

    /// <summary>The --quick sequence: two small tasks.</summary>
    public const string QuickSequence = "sst2-sms_spam";

    public static bool IsSequence(string name) => SequenceNames.Contains(name) || name == QuickSequence;

    /// <summary>The tasks of a sequence, in order.</summary>
    public static string[] Tasks(string sequence) => sequence.Split('-');

    /// <summary>
    /// Every method. Full fine-tuning and the shared adapter reproduce Pandey (2026)'s protocol (one encoder trained
    /// through the sequence, a head per task, LoRA r = 8 on query and value); the others add one remedy each.
    /// </summary>
    public static IReadOnlyList<SequenceMethod> Methods() =>
    [
        SequenceMethod.Of(SequenceStrategy.FullFineTuning),
        SequenceMethod.Of(SequenceStrategy.SharedAdapter),
        SequenceMethod.Of(SequenceStrategy.AdapterPerTask),
        new("shared LoRA + rehearsal 10%", SequenceStrategy.SharedAdapter) { RehearsalRatio = 0.1 },
        new("shared LoRA + rehearsal 30%", SequenceStrategy.SharedAdapter) { RehearsalRatio = 0.3 },
        new("full + L2-SP", SequenceStrategy.FullFineTuning) { RetentionPenalty = RetentionPenalty.L2SP(1) },
        new("shared LoRA + EWC", SequenceStrategy.SharedAdapter) { RetentionPenalty = RetentionPenalty.Ewc(1) },
        SequenceMethod.Of(SequenceStrategy.OrthogonalAdapters),
        SequenceMethod.Of(SequenceStrategy.MergedAdapters),
        new("shared LoRA + budget 5 pts", SequenceStrategy.SharedAdapter) { ForgettingBudget = new ForgettingBudget(0.05) { EveryNSteps = 8, MaxCheckRows = 200 } },
    ];

    /// <summary>The method the others are compared with, paired: the bare shared adapter each remedy is added to.</summary>
    public static string Reference => SequenceMethod.Of(SequenceStrategy.SharedAdapter).Name;

    /// <summary>
    /// The sequence settings: batch 16, one epoch per task, learning rates 1e-4 (full) and 2e-3 (LoRA), high enough for
    /// a fresh head to learn each task in one short epoch; 200 probe rows; the internal measures off (the accuracy matrix
    /// is what this study compares).
    /// </summary>
    public static ForgettingEvaluator.Options Options(StudySettings settings, int seed) => new()
    {
        Seed = seed,
        MaxSequenceLength = settings.MaxSequenceLength,
        MaxTrainExamples = settings.TrainRows,
        MaxTestExamples = settings.TestRows,
        MaxProbeTrainExamples = 200,
        Epochs = settings.Epochs,
        TrainBatchSize = 16,
        FullLearningRate = 1e-4,
        LoraLearningRate = 2e-3,
        Lora = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = LoraTargetModules.Query | LoraTargetModules.Value },
        BatchSize = 64,
        DriftExamples = 64,
        MeasureGradientConflict = false,
        MeasureSharpness = false,
    };
}
