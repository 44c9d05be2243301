using Microsoft.ML;
using MLNet.Lora.Training;

namespace MLNet.Lora.Benchmarks;

/// <summary>Section 6: accuracy and time on real data, LoRA r8 vs full fine-tuning vs head only.</summary>
internal static partial class Sections
{
    private sealed record DataSpec(string Name, string TrainSplit, string EvalSplit, int Train, int Eval, int QuickTrain, int QuickEval);

    private static readonly DataSpec[] AccuracyData =
    [
        new("sst2", "train", "dev", 10_000, 872, 2000, 872),
        new("ag_news", "train", "test", 4000, 2000, 1000, 500),
        new("emotion", "train", "dev", 8000, 2000, 1000, 500),
        new("banking77", "train", "test", 10_003, 3080, 2000, 500),
    ];

    /// <summary>Reports synchronously on the training thread (System.Progress would post to the thread pool).</summary>
    private sealed class Progress(Action<LoraTrainingProgress> report) : IProgress<LoraTrainingProgress>
    {
        public void Report(LoraTrainingProgress value) => report(value);
    }

    private sealed record FitResult(double LastAccuracy, int BestEpoch, double[] EpochAccuracies, double[] EpochSeconds, double[] EpochCpuSeconds);

    private static void Accuracy(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        var o = ctx.Options;
        int epochs = o.Quick ? 1 : Workload.DefaultOptions(FineTuningMode.Lora).MaxEpochs;
        string rate = o.LearningRate is { } lr ? $"learning rate {lr:G3}" : "the modes' default learning rates";
        r.Section($"6. Accuracy and time on real data: {string.Join(" vs ", o.Modes)} (trainer defaults, {rate}, {epochs} epoch(s), seeds {string.Join(", ", o.Seeds)})");
        if (!Directory.Exists(ctx.DataDirectory))
        {
            Report.Line($"SKIPPED: the data folder {ctx.DataDirectory} does not exist (pass --data DIR).");
            return;
        }
        var w = ctx.Workload;
        foreach (var spec in AccuracyData.Where(d => ctx.Options.Datasets is null || ctx.Options.Datasets.Contains(d.Name)))
        {
            string? trainPath = DataSets.FileOf(ctx.DataDirectory, spec.Name, spec.TrainSplit);
            string? evalPath = DataSets.FileOf(ctx.DataDirectory, spec.Name, spec.EvalSplit);
            if (trainPath is null || evalPath is null)
            {
                Report.Line($"SKIPPED {spec.Name}: {spec.Name}/{spec.TrainSplit}.tsv or {spec.EvalSplit}.tsv is missing under {ctx.DataDirectory}.");
                continue;
            }
            var allTrain = DataSets.Read(trainPath);
            var allEval = DataSets.Read(evalPath);
            var train = DataSets.Sample(allTrain, ctx.Options.Quick ? spec.QuickTrain : spec.Train, seed: 1);
            var eval = DataSets.Sample(allEval, ctx.Options.Quick ? spec.QuickEval : spec.Eval, seed: 1);
            string sampled = (train.Count < allTrain.Count ? $"train subsampled {train.Count} of {allTrain.Count}" : $"train {train.Count}") +
                             (eval.Count < allEval.Count ? $", {spec.EvalSplit} subsampled {eval.Count} of {allEval.Count}" : $", {spec.EvalSplit} {eval.Count}");
            Report.Line($"{spec.Name}: {sampled}, {train.Select(x => x.Label).Distinct().Count()} classes");

            // Each mode once per seed: the spread over seeds (training order, dropout, initialisation) is the figure's min / max.
            var results = new Dictionary<FineTuningMode, List<FitResult>>();
            foreach (var mode in o.Modes)
            {
                var runs = o.Seeds.Select(seed => FitAndScore(w, train, eval, mode, epochs, o.LearningRate, seed)).ToList();
                results[mode] = runs;
                ReportRuns(r, $"{spec.Name} {mode}", spec.EvalSplit, runs, o.Seeds);
            }
            if (spec.Name == "sst2" && results.ContainsKey(FineTuningMode.Lora) && results.ContainsKey(FineTuningMode.Full))
            {
                var lora = Spread.Of(results[FineTuningMode.Lora].Select(x => x.LastAccuracy));
                var full = Spread.Of(results[FineTuningMode.Full].Select(x => x.LastAccuracy));
                r.Target("sst2 LoRA r8 dev accuracy", lora, "", ">=", o.Quick ? 0.0 : 0.87, "F4",
                    note: o.Quick ? "quick run: small sample, target not applied" : null);
                r.Target("sst2 full fine-tuning minus LoRA r8 (points, medians over seeds)", new Spread(1, 1, 1).Map(_ => 100 * (full.Median - lora.Median)),
                    "points", "<=", o.Quick ? 100 : 1.5, "F2");

                // What the step that is faster at 128 tokens (section 1) costs in accuracy and saves on short texts.
                var fused = o.Seeds.Select(seed => FitAndScore(w, train, eval, FineTuningMode.Lora, epochs, o.LearningRate, seed, attentionDropout: 0)).ToList();
                ReportRuns(r, "sst2 Lora with AttentionDropout = 0", spec.EvalSplit, fused, o.Seeds);
            }
        }
    }

    /// <summary>Accuracy after the last epoch and wall time per epoch, min / median / max over the seeds' runs.</summary>
    private static void ReportRuns(Report r, string name, string split, List<FitResult> runs, int[] seeds)
    {
        string perEpoch = string.Join("; ", runs.Select((x, k) => $"seed {seeds[k]}: " +
            string.Join(", ", x.EpochAccuracies.Select((a, i) => $"{a:F4} ({x.EpochSeconds[i]:F0} s)")) + $", best epoch {x.BestEpoch}"));
        r.Figure($"{name}: {split} accuracy after the last epoch", Spread.Of(runs.Select(x => x.LastAccuracy)), "", "F4", note: perEpoch);
        r.Figure($"{name}: training wall time per epoch", Spread.Of(runs.SelectMany(x => x.EpochSeconds)), "s", "F0",
            note: $"process CPU time per epoch, validation included: {runs.SelectMany(x => x.EpochCpuSeconds).DefaultIfEmpty(double.NaN).Average():F0} s");
    }

    /// <summary>Fits with the trainer's defaults for <paramref name="mode"/>, validating on <paramref name="eval"/> after each epoch.</summary>
    private static FitResult FitAndScore(Workload w, List<TextRow> train, List<TextRow> eval, FineTuningMode mode, int epochs,
        double? learningRate, int seed, double? attentionDropout = null)
    {
        var ml = new MLContext(seed: 1);
        var trainView = ml.Data.LoadFromEnumerable(train);
        var evalView = ml.Data.LoadFromEnumerable(eval);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(trainView);
        var cpuPerEpoch = new List<double>();
        double cpuMark = Clock.ProcessCpuSeconds();
        var options = new LoraTextClassificationTrainer.Options
        {
            Encoder = w.Encoder,
            Mode = mode,
            MaxEpochs = epochs,
            LearningRate = learningRate,
            AttentionDropout = attentionDropout,
            Seed = seed,
            Progress = new Progress(p =>
            {
                if (!p.IsEpochEnd) return;
                double now = Clock.ProcessCpuSeconds();
                cpuPerEpoch.Add(now - cpuMark);
                cpuMark = now;
                Console.WriteLine($"    {mode}: {p} (CPU {cpuPerEpoch[^1]:F0} s)");
            }),
        };
        using var model = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keys.Transform(trainView), keys.Transform(evalView));
        var history = model.TrainingHistory;
        var accuracies = history.Select(h => h.ValidationAccuracy ?? double.NaN).ToArray();
        int best = Array.IndexOf(accuracies, accuracies.Max());
        Console.WriteLine($"    {mode}: " + string.Join(", ", history.Select(h => $"epoch {h.Epoch} loss {h.TrainingLoss:F4} acc {h.ValidationAccuracy:F4} train {h.TrainingTime.TotalSeconds:F0}s")));
        return new FitResult(accuracies[^1], best + 1, accuracies, history.Select(h => h.TrainingTime.TotalSeconds).ToArray(), cpuPerEpoch.ToArray());
    }
}
