// The earlier forgetting study (--timeline): 1. the sequence sst2 → ag_news → emotion with full fine-tuning, a shared
// adapter and an adapter per task, with every internal measure; 2. two monitored fine-tunes on ag_news (full and LoRA)
// with the retention of sst2 and emotion recorded every epoch; 3. the retention of four tasks after each, with drift,
// gradient conflict, sharpness and similarity. Writes report.json, report.txt and PNG charts and prints the summary.
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using MLNet.Lora;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Native;
using MLNet.Lora.Training;

namespace ForgettingStudy;

internal static class TimelineStudy
{
    public static int Run(StudySettings settings)
    {
        if (settings.RenderFrom is { } saved)
        {
            var loaded = ForgettingReport.LoadJson(saved);
            loaded.SaveText(Path.Combine(settings.OutputFolder, "report.txt"));
            var drawn = loaded.SaveCharts(settings.OutputFolder);
            Console.WriteLine(loaded);
            Console.WriteLine(PooledConflict(loaded));
            Console.WriteLine($"Redrew report.txt and {drawn.Count} charts from {saved} into {settings.OutputFolder}.");
            return 0;
        }

        var ml = new MLContext(seed: 1);
        var data = new StudyData(ml, settings.DataFolder);
        var missing = data.Missing().ToList();
        if (missing.Count > 0)
        {
            Console.WriteLine($"Skipping the forgetting study: the datasets are not in {settings.DataFolder} (missing {string.Join(", ", missing)}).");
            Console.WriteLine("Pass --data <folder> to point at them; see ../shared/data/README.md for the expected layout.");
            return 0;
        }

        TorchRuntime.IntraOpThreads = settings.Threads;   // before the first model loads, which would otherwise pick the core count
        var clock = Stopwatch.StartNew();
        var progress = new ConsoleProgress(clock);
        Console.WriteLine($"Forgetting study: data {settings.DataFolder}, output {settings.OutputFolder}, {settings.Threads} torch thread(s)");

        using var encoder = PretrainedEncoder.LoadDefault();
        var reference = ComparedModel.FromEncoder(encoder, "all-MiniLM-L6-v2");
        var sst2 = data.Task("sst2", "train.tsv", "dev.tsv");   // as the earlier study read it
        var agNews = data.Task("ag_news", "train.tsv", "test.tsv");
        var emotion = data.Task("emotion", "train.tsv", "test.tsv");
        var banking = data.Task("banking77", "train.tsv", "test.tsv");
        var sms = data.Unsplit("sms_spam", "all.tsv");

        // Sequences: 1e-4 (full) and 2e-3 (LoRA) let a fresh head and the encoder learn a task within one short epoch.
        // Monitored fine-tunes: by default the usual rates, 3e-5 and 5e-4, which spread the change over several epochs.
        var sequenceOptions = new ForgettingEvaluator.Options
        {
            Seed = 1, MaxSequenceLength = settings.MaxSequenceLength, MaxTrainExamples = settings.TrainRows, MaxTestExamples = settings.TestRows,
            MaxProbeTrainExamples = 500, Epochs = settings.Epochs, TrainBatchSize = 16, FullLearningRate = 1e-4, LoraLearningRate = 2e-3,
            DriftExamples = 128, GradientBatches = 5, GradientBatchSize = 16, SharpnessExamples = 16, PowerIterations = 5,
        };
        Console.WriteLine("\n== Part 1: task sequence sst2 → ag_news → emotion (full fine-tuning, shared LoRA adapter, adapter per task)");
        var report = new ForgettingEvaluator(ml, sequenceOptions).RunSequences(reference, [sst2, agNews, emotion],
            [SequenceStrategy.FullFineTuning, SequenceStrategy.SharedAdapter, SequenceStrategy.AdapterPerTask], progress);

        {
            // The monitor measures after every epoch, so each measurement is kept small: two retention tasks, few probe rows.
            var monitorEvaluator = new ForgettingEvaluator(ml, new ForgettingEvaluator.Options
            {
                Seed = 1, MaxSequenceLength = settings.MaxSequenceLength, MaxProbeTrainExamples = 400, MaxTestExamples = 200,
                DriftExamples = 128, GradientBatches = 4, GradientBatchSize = 16, SharpnessExamples = 16, PowerIterations = 6,
            });
            // After the fine-tune: four retention tasks, without sharpness (the timeline has it, epoch by epoch).
            var retentionEvaluator = new ForgettingEvaluator(ml, new ForgettingEvaluator.Options
            {
                Seed = 1, MaxSequenceLength = settings.MaxSequenceLength, MaxProbeTrainExamples = 500, MaxTestExamples = 300,
                DriftExamples = 128, GradientBatches = 6, GradientBatchSize = 16, MeasureSharpness = false,
            });
            var agTrain = data.Sample(agNews.Train, settings.MonitorRows, seed: 7);
            var agTask = agNews with { Train = agTrain };
            foreach (var (mode, rate, name) in new[] { (FineTuningMode.Full, settings.MonitorFullRate, "full"), (FineTuningMode.Lora, settings.MonitorLoraRate, "LoRA") })
            {
                Console.WriteLine($"\n== Part 2: {name} fine-tune on ag_news ({settings.MonitorRows} rows, {settings.MonitorEpochs} epochs), monitored every epoch");
                using var monitor = monitorEvaluator.CreateMonitor(reference, [sst2, emotion], newTask: agTask, label: $"{name} on ag_news", progress: progress);
                var trainer = ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
                {
                    Encoder = encoder, Mode = mode, LearningRate = rate, MaxEpochs = settings.MonitorEpochs, BatchSize = 16,
                    MaxSequenceLength = settings.MaxSequenceLength, Seed = 1, EpochEnded = monitor.OnEpochEnded,
                    Progress = new ProgressLine(clock, name),
                });
                using var fitted = ml.Transforms.Conversion.MapValueToKey("Label").Append(trainer).Fit(agTrain).LastTransformer;
                report = report with { Timelines = [.. report.Timelines, monitor.Timeline] };

                Console.WriteLine($"\n== Part 3: what the {name} fine-tune retained of sst2, emotion, banking77 and sms_spam");
                report = report.Merge(retentionEvaluator.Evaluate(reference, ComparedModel.FromTransformer(fitted, $"{name} on ag_news"),
                    [sst2, emotion, banking, sms], newTask: agTask, progress: progress));
            }
        }

        Directory.CreateDirectory(settings.OutputFolder);
        report.SaveJson(Path.Combine(settings.OutputFolder, "report.json"));
        report.SaveText(Path.Combine(settings.OutputFolder, "report.txt"));
        var charts = report.SaveCharts(settings.OutputFolder);
        Console.WriteLine();
        Console.WriteLine(report);
        Console.WriteLine(PooledConflict(report));
        Console.WriteLine($"Wrote report.json, report.txt and {charts.Count} charts to {settings.OutputFolder} in {clock.Elapsed:mm\\:ss}.");
        return 0;
    }

    /// <summary>The conflict rate per module kind pooled over every measurement (retention and sequence steps), weighted by pairs.</summary>
    private static string PooledConflict(ForgettingReport report)
    {
        var all = report.GradientConflicts.Concat(report.Sequences.SelectMany(s => s.GradientConflicts)).ToList();
        string Pool(Func<GradientConflictResult, IEnumerable<GradientConflictSummary>> part) => string.Join(", ", all.SelectMany(part).GroupBy(k => k.ModuleKind)
            .Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Key} {100 * g.Sum(k => k.ConflictRate * k.Count) / g.Sum(k => k.Count):0} % ({g.Sum(k => k.Count)} pairs)")));
        return $"Conflict rate per module kind, pooled over {all.Count} measurements: weight matrices {Pool(c => c.WeightMatrices)}; adapters {Pool(c => c.Adapters)}.";
    }
}
