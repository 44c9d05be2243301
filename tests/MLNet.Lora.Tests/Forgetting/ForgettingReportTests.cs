using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Tests.Forgetting;

public class ForgettingReportTests
{
    /// <summary>A report with every section filled by hand, NaN included.</summary>
    internal static ForgettingReport Sample()
    {
        GradientConflictSummary[] summaries =
        [
            new("query", 8, -0.1, 0.625), new("key", 8, 0.05, 0.5), new("value", 8, 0.2, 0.25),
            new("attention-output", 8, 0.1, 0.375), new("intermediate", 8, 0.3, 0.125), new("output", 8, 0.25, 0.25),
        ];
        var conflict = new GradientConflictResult
        {
            OldTask = "sst2", NewTask = "ag_news", Model = "LoRA", Batches = 8, BatchSize = 16,
            WeightMatrices = summaries, Adapters = summaries[..1], WeightMatrixConflictRate = 0.35, AdapterConflictRate = 0.625,
            MeanGradientCosine = -0.02, SkippedPairs = 1,
        };
        var drift = new InternalComparison
        {
            Task = "sst2", Reference = "base", Candidate = "LoRA", Examples = 64,
            RepresentationDrift = [0, 0.01, 0.03, 0.08], AttentionDrift = [[0.01, 0.02], [0.05, 0.07], [0.02, 0.1]],
            MeanAttentionDriftPerLayer = [0.015, 0.06, 0.06], HeadThreshold = 0.05, ShareOfHeadsAbove = 0.5,
        };
        TimelinePoint Point(int epoch, double drop, double repr, double attn, double? eig) => new()
        {
            Epoch = epoch, TrainingLoss = epoch == 0 ? null : 1.0 / epoch, ValidationAccuracy = null,
            FrozenProbeAccuracy = new Dictionary<string, double> { ["sst2"] = 0.8 - drop }, RefitProbeAccuracy = new Dictionary<string, double> { ["sst2"] = 0.8 },
            RetentionDrop = drop, RepresentationDrift = [0, repr / 2, repr], MaxRepresentationDrift = repr,
            AttentionDriftPerLayer = [attn / 2, attn], MaxAttentionDrift = attn, ShareOfHeadsAbove = attn > 0.05 ? 0.5 : 0,
            TopHessianEigenvalue = eig, SamSharpness = eig / 100, WeightMatrixConflictRate = 0.4, AdapterConflictRate = null,
        };
        return new ForgettingReport
        {
            Retention =
            [
                new RetentionResult
                {
                    Task = "sst2", Reference = "base", Candidate = "LoRA", ClassCount = 2, ProbeTrainExamples = 700, TestExamples = 300,
                    MajorityClassAccuracy = 0.52, ReferenceAccuracy = 0.8, FrozenProbeAccuracy = 0.75, FrozenProbeDrop = 0.05,
                    RefitProbeAccuracy = 0.79, RefitProbeDrop = 0.01,
                },
            ],
            Internals = [drift],
            Sharpness = [new SharpnessResult { Task = "sst2", Model = "LoRA", ParameterSet = "weight matrices", ParameterCount = 1000, Examples = 32, TopHessianEigenvalue = 12.5, SamSharpness = 0.003, Rho = 0.05, PowerIterations = 10 }],
            GradientConflicts = [conflict],
            Similarities = [new TaskSimilarityResult { TaskA = "sst2", TaskB = "ag_news", Model = "base", RepresentationSimilarity = 0.4, GradientCosine = double.NaN }],
            Sequences =
            [
                new SequenceResult
                {
                    Strategy = SequenceStrategy.SharedAdapter, Tasks = ["sst2", "ag_news"], Accuracy = [[0.8, 0.7], [0.75, 0.9]], Baseline = [0.7, 0.65],
                    AverageAccuracy = 0.825, AverageForgetting = 0.05, AverageForgettingFirst = 0.05, BackwardTransfer = -0.05, ForwardTransfer = 0.05,
                    Steps = [new StepForgetting { OldTask = "sst2", NewTask = "ag_news", Before = 0.8, After = 0.75 }],
                    Sharpness = [], GradientConflicts = [conflict], Drift = [drift], TrainedParameters = [1000, 1000], Seconds = 12.5,
                },
            ],
            Timelines =
            [
                new ForgettingTimeline
                {
                    Label = "LoRA on ag_news", RetentionTasks = ["sst2"], Thresholds = new TimelineThresholds(),
                    Points = [Point(0, 0, 0, 0, 10), Point(1, 0.01, 0.06, 0.03, 9), Point(2, 0.06, 0.1, 0.05, 6)],
                },
            ],
            Correlations = [SimilarityForgettingCorrelation.From("retention LoRA", "representation", "frozen-probe drop", [new CorrelationPoint("sst2 vs ag_news", 0.4, 0.05)])],
        };
    }

    [Fact]
    public void JsonRoundTripKeepsEverything()
    {
        var report = Sample();
        string json = report.ToJson();
        json.Should().Contain("\"Strategy\": \"SharedAdapter\"").And.Contain("\"GradientCosine\": \"NaN\"").And.Contain("Chaudhry");
        var back = ForgettingReport.FromJson(json);
        back.ToJson().Should().Be(json);
        back.ToString().Should().Be(report.ToString());
        back.Sequences[0].ToAccuracyMatrix().AverageForgetting().Should().BeApproximately(0.05, 1e-12);
        back.Timelines[0].Verdict.Should().Be("inside-first");
    }

    [Fact]
    public void SavesAtomicallyAndLoadsBack()
    {
        var folder = Directory.CreateTempSubdirectory("forgetting-report-").FullName;
        try
        {
            string path = Path.Combine(folder, "sub", "report.json");
            Sample().SaveJson(path);
            Sample().SaveJson(path);   // replacing an existing file
            ForgettingReport.LoadJson(path).ToJson().Should().Be(Sample().ToJson());
            Sample().SaveText(Path.Combine(folder, "report.txt"));
            File.ReadAllText(Path.Combine(folder, "report.txt")).Should().Contain("== Retention");
            Directory.EnumerateFiles(folder, "*.tmp", SearchOption.AllDirectories).Should().BeEmpty("temporary files are renamed, not left behind");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void ChartsAreNonEmptyPngFiles()
    {
        var folder = Directory.CreateTempSubdirectory("forgetting-charts-").FullName;
        try
        {
            var paths = Sample().SaveCharts(folder);
            paths.Select(Path.GetFileName).Should().BeEquivalentTo(["timeline-lora-on-ag-news.png", "drift-per-layer.png", "conflict-per-module.png"]);
            foreach (var path in paths)
            {
                var bytes = File.ReadAllBytes(path);
                bytes.Length.Should().BeGreaterThan(5000);
                bytes.Take(8).Should().Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, "a PNG signature");
            }
            Directory.EnumerateFiles(folder, "*.tmp").Should().BeEmpty();
            new ForgettingReport().SaveCharts(Path.Combine(folder, "empty")).Should().BeEmpty("an empty report has nothing to draw");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void MergeAppendsSections()
    {
        var merged = Sample().Merge(Sample());
        merged.Retention.Should().HaveCount(2);
        merged.Timelines.Should().HaveCount(2);
        merged.Sequences.Should().HaveCount(2);
        merged.Similarities.Should().ContainSingle("an identical similarity is one result");
        var other = Sample() with { Similarities = [Sample().Similarities[0] with { RepresentationSimilarity = 0.5 }] };
        Sample().Merge(other).Similarities.Should().HaveCount(2, "the same pair measured on other rows is another result");
        new ForgettingReport().ToString().Should().Be("(empty forgetting report)");
    }
}
