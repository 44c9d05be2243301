using Microsoft.ML;
using MLNet.Lora.Adapters;
using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Tests.Forgetting;

/// <summary>Generated tasks for the forgetting tests, over the tiny encoder's vocabulary.</summary>
internal static class ForgettingTestData
{
    private static readonly string[] Positive = ["good", "great", "excellent", "wonderful", "fine"];
    private static readonly string[] Negative = ["bad", "awful", "terrible", "boring", "poor"];
    private static readonly string[] Screen = ["movie", "film"];
    private static readonly string[] Writing = ["plot", "story", "acting"];
    private static readonly string[] Adverbs = ["very", "really", "quite"];

    /// <summary>
    /// Texts of one template, "the film was really great": task A labels the sentiment word, task B the subject word
    /// (screen vs writing). Both tasks see the same kind of text but need different information from it.
    /// </summary>
    public static List<TextRow> Reviews(int count, int seed, bool labelBySubject)
    {
        var random = new Random(seed);
        var rows = new List<TextRow>(count);
        for (int i = 0; i < count; i++)
        {
            bool positive = random.Next(2) == 0, screen = random.Next(2) == 0;
            string subject = Pick(random, screen ? Screen : Writing);
            string text = $"the {subject} {(random.Next(2) == 0 ? "was" : "is")} {Pick(random, Adverbs)} {Pick(random, positive ? Positive : Negative)}";
            string label = labelBySubject ? (screen ? "screen" : "writing") : (positive ? "positive" : "negative");
            rows.Add(new TextRow { Text = text, Label = label });
        }
        return rows;
    }

    public static ForgettingTask Sentiment(MLContext ml, int train = 160, int test = 80, int seed = 1) => new(
        "sentiment",
        ml.Data.LoadFromEnumerable(Reviews(train, seed, labelBySubject: false)),
        ml.Data.LoadFromEnumerable(Reviews(test, seed + 100, labelBySubject: false)));

    public static ForgettingTask Subject(MLContext ml, int train = 160, int test = 80, int seed = 2) => new(
        "subject",
        ml.Data.LoadFromEnumerable(Reviews(train, seed, labelBySubject: true)),
        ml.Data.LoadFromEnumerable(Reviews(test, seed + 100, labelBySubject: true)));

    /// <summary>Animals, colours or markets; without a test split unless <paramref name="withTest"/>.</summary>
    public static ForgettingTask Topics(MLContext ml, int count = 200, int seed = 3, bool withTest = false) => new(
        "topics",
        ml.Data.LoadFromEnumerable(SyntheticData.Topics(count, seed)),
        withTest ? ml.Data.LoadFromEnumerable(SyntheticData.Topics(80, seed + 100)) : null);

    /// <summary>
    /// Small sizes so that each evaluation takes a fraction of a second on the tiny encoder. Also runs torch on one
    /// thread: tiny models gain nothing from intra-op parallelism, and on a busy machine OpenMP's spinning worker
    /// threads slow them down by one to two orders of magnitude (measured: 109 s against 3 s for the sequence fixture).
    /// </summary>
    public static ForgettingEvaluator.Options FastOptions()
    {
        TorchSharp.torch.set_num_threads(1);
        return Fast();
    }

    private static ForgettingEvaluator.Options Fast() => new()
    {
        Seed = 3,
        // The generated tasks are perfectly separable; a strongly regularised probe keeps its loss (and gradients) away from 0.
        ProbeL2Regularization = 50,
        MaxSequenceLength = 16,
        BatchSize = 32,
        MaxProbeTrainExamples = 200,
        MaxTestExamples = 100,
        DriftExamples = 64,
        GradientBatches = 3,
        GradientBatchSize = 8,
        SharpnessExamples = 16,
        PowerIterations = 4,
        MaxTrainExamples = 160,
        Epochs = 3,
        TrainBatchSize = 16,
        FullLearningRate = 3e-3,
        LoraLearningRate = 1e-2,
        Lora = new LoraConfig { Rank = 2, Alpha = 4, TargetModules = LoraTargetModules.Query | LoraTargetModules.Value },
    };

    private static string Pick(Random random, string[] items) => items[random.Next(items.Length)];
}
