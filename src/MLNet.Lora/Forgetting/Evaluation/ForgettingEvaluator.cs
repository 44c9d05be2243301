using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Lora.Integration;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Measures catastrophic forgetting on your own data: how much a fine-tune damaged what a reference model knew (linear
/// probes), where inside the model the damage is (representation and attention drift, gradient conflict, loss
/// sharpness), how similar tasks are, and how full fine-tuning and LoRA compare over a task sequence (accuracy matrix).
/// </summary>
/// <example>
/// <code>
/// var evaluator = new ForgettingEvaluator(mlContext, new ForgettingEvaluator.Options { Seed = 1 });
/// using var baseEncoder = PretrainedEncoder.LoadDefault();
/// var report = evaluator.Evaluate(
///     ComparedModel.FromEncoder(baseEncoder),
///     ComparedModel.FromTransformer(fitted),
///     [new ForgettingTask("sst2", sst2Rows)],
///     newTask: new ForgettingTask("reviews", trainRows));
/// Console.WriteLine(report);
/// report.SaveJson("forgetting.json");
/// </code>
/// </example>
public sealed partial class ForgettingEvaluator
{
    private readonly MLContext ml;
    private readonly Options options;
    private readonly Device device;

    /// <summary>Creates an evaluator.</summary>
    /// <param name="mlContext">The ML.NET context; its probes (L-BFGS maximum entropy) run in it, and its GPU settings choose the training device of task sequences.</param>
    /// <param name="options">Settings; defaults when null. The object is validated and then read at each call.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is invalid (the message names it).</exception>
    public ForgettingEvaluator(MLContext mlContext, Options? options = null)
    {
        ml = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
        this.options = (options ?? new Options()).Validate();
        device = MLContextAccess.Device(mlContext);
    }

    /// <summary>The settings in use.</summary>
    public Options Settings => options;

    internal MLContext Context => ml;

    /// <summary>
    /// Retention after one fine-tune. For each retention task: a linear probe fitted on the reference's features is applied
    /// unchanged to the candidate's (frozen probe: the accuracy drop is the forgetting a fixed read-out sees) and a fresh
    /// probe is fitted on the candidate's (what is still linearly recoverable). On the same inputs: representation drift
    /// per layer, attention drift per layer and head, and the sharpness of the old task's loss at both models. With
    /// <paramref name="newTask"/> (the data the candidate was fine-tuned on): gradient conflict between the old and the new
    /// task at the candidate, each task's similarity to the new task at the reference, and their correlation with forgetting.
    /// </summary>
    /// <param name="reference">What the model knew before (the pretrained encoder, or an earlier fine-tune).</param>
    /// <param name="candidate">The model after the fine-tune.</param>
    /// <param name="retentionTasks">Tasks whose knowledge should survive; each is split (seeded) into probe-training and test rows unless it has a test split.</param>
    /// <param name="newTask">The fine-tune's own task, for the gradient and similarity measures; optional.</param>
    /// <param name="progress">Receives a line per stage.</param>
    /// <param name="cancellationToken">Cancels between batches.</param>
    /// <returns>A report with the retention, internal, gradient, sharpness and similarity sections filled.</returns>
    /// <exception cref="ArgumentException">A task is missing a column, has too few rows or classes, or the models differ in shape or tokenizer.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public ForgettingReport Evaluate(ComparedModel reference, ComparedModel candidate, IReadOnlyList<ForgettingTask> retentionTasks,
        ForgettingTask? newTask = null, IProgress<ForgettingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(retentionTasks);
        if (retentionTasks.Count == 0) throw new ArgumentException("Name at least one retention task.", nameof(retentionTasks));
        options.Validate();
        var clock = Stopwatch.StartNew();

        var retention = new List<RetentionResult>();
        var internals = new List<InternalComparison>();
        var sharpness = new List<SharpnessResult>();
        var conflicts = new List<GradientConflictResult>();
        var similarities = new List<TaskSimilarityResult>();

        using var outer = NewDisposeScope();
        NewTaskState? fresh = null;
        try
        {
            if (newTask is not null)
            {
                Report(progress, "gradients", $"Reading the new task '{newTask.Name}' and fitting its probes on both models");
                fresh = NewTaskState.Create(this, reference, candidate, newTask, cancellationToken);
            }

            foreach (var task in retentionTasks)
            {
                var data = ReadRetention(task);
                Report(progress, "retention", $"{task.Name}: {data.Train.Count} probe-training and {data.Test.Count} test rows, {data.ClassCount} classes");
                using var baseline = RetentionBaseline.Fit(ml, options, reference, data, cancellationToken);
                var (frozen, refit) = baseline.Measure(candidate, refit: true, cancellationToken);
                var result = baseline.Result(candidate, frozen, refit!.Value);
                retention.Add(result);
                Report(progress, "retention", $"{task.Name}: reference {result.ReferenceAccuracy:P1}, frozen probe {result.FrozenProbeAccuracy:P1}, refit probe {result.RefitProbeAccuracy:P1}");

                Report(progress, "drift", $"{task.Name}: representation and attention drift on {Math.Min(options.DriftExamples, data.Test.Count)} inputs");
                internals.Add(InternalDriftMeter.Compare(reference, candidate, task.Name, baseline.DriftTexts, options.MaxSequenceLength,
                    options.BatchSize, options.HeadDriftThreshold, cancellationToken));

                if (options.MeasureSharpness)
                {
                    Report(progress, "sharpness", $"{task.Name}: top Hessian eigenvalue and SAM sharpness of the old-task loss");
                    sharpness.AddRange(MeasureSharpness(baseline, reference, candidate, cancellationToken));
                }

                if (fresh is not null)
                {
                    if (options.MeasureGradientConflict)
                    {
                        Report(progress, "gradients", $"{task.Name} vs {fresh.Data.Name}: gradient conflict at '{candidate.Name}'");
                        conflicts.Add(MeasureConflict(task.Name, fresh.Data.Name, candidate, baseline.GradientLoss(candidate),
                            RetentionBaseline.BatchLoss(candidate, fresh.Data.Train, fresh.CandidateProbe, options), cancellationToken));
                    }
                    Report(progress, "similarity", $"{task.Name} vs {fresh.Data.Name}: similarity at '{reference.Name}'");
                    similarities.Add(MeasureSimilarity(reference, baseline, fresh, cancellationToken));
                }
            }
        }
        finally
        {
            fresh?.Dispose();
        }

        var correlations = new List<SimilarityForgettingCorrelation>();
        if (similarities.Count > 0)
        {
            string source = $"retention {candidate.Name}";
            const string measure = "frozen-probe accuracy drop of the retention task after fine-tuning on the new task";
            correlations.Add(SimilarityForgettingCorrelation.From(source, "representation", measure,
                similarities.Zip(retention, (s, r) => new CorrelationPoint($"{r.Task} vs {s.TaskB}", s.RepresentationSimilarity, r.FrozenProbeDrop))));
            if (options.MeasureGradientConflict)
                correlations.Add(SimilarityForgettingCorrelation.From(source, "gradient", measure,
                    similarities.Zip(retention, (s, r) => new CorrelationPoint($"{r.Task} vs {s.TaskB}", s.GradientCosine, r.FrozenProbeDrop))));
        }

        Report(progress, "retention", $"Done in {clock.Elapsed.TotalSeconds:F0} s");
        return new ForgettingReport
        {
            Retention = retention,
            Internals = internals,
            Sharpness = sharpness,
            GradientConflicts = conflicts,
            Similarities = similarities,
            Correlations = correlations,
        };
    }

    /// <summary>
    /// Trains the task sequence once per strategy, each run starting from a copy of <paramref name="start"/> (which is
    /// not changed), and fills the accuracy matrix, its summaries, and per step the gradient conflict, per task the
    /// sharpness and drift. Task similarities are measured once on <paramref name="start"/> and correlated with each
    /// step's forgetting.
    /// </summary>
    /// <param name="start">The model every run starts from; its adapters, if any, are folded into the copy's weights.</param>
    /// <param name="tasks">Tasks in training order, at least two, each with a test split.</param>
    /// <param name="strategies">Which strategies to run (each gets its own copy).</param>
    /// <param name="progress">Receives a line per stage and the training progress.</param>
    /// <param name="cancellationToken">Cancels between batches.</param>
    /// <returns>A report with the sequence, similarity and correlation sections filled.</returns>
    /// <exception cref="ArgumentException">Fewer than two tasks, a task without test data or with a missing column, or no strategy.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public ForgettingReport RunSequences(ComparedModel start, IReadOnlyList<ForgettingTask> tasks, IReadOnlyList<SequenceStrategy> strategies,
        IProgress<ForgettingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(tasks);
        ArgumentNullException.ThrowIfNull(strategies);
        if (tasks.Count < 2) throw new ArgumentException($"A task sequence needs at least two tasks; got {tasks.Count}.", nameof(tasks));
        if (strategies.Count == 0) throw new ArgumentException("Name at least one strategy.", nameof(strategies));
        if (tasks.Select(t => t.Name).Distinct(StringComparer.Ordinal).Count() != tasks.Count)
            throw new ArgumentException("Task names must be unique.", nameof(tasks));
        options.Validate();

        var data = tasks.Select(t => TaskData.Read(t, options.MaxTrainExamples, options.MaxTestExamples, options.ProbeTestFraction, options.Seed, requireTest: true)).ToList();
        foreach (var d in data) Report(progress, "sequence", $"{d.Name}: {d.Train.Count} train and {d.Test.Count} test rows, {d.ClassCount} classes");

        Report(progress, "similarity", $"Task similarities and probe baselines at '{start.Name}'");
        var (similarities, baseline) = SimilaritiesAndBaseline(start, data, cancellationToken);

        var results = new List<SequenceResult>();
        var correlations = new List<SimilarityForgettingCorrelation>();
        foreach (var strategy in strategies)
        {
            var runner = new TaskSequenceRunner(this, options, device, start, data, baseline, strategy, progress, cancellationToken);
            var result = runner.Run();
            results.Add(result);
            const string measure = "step forgetting R[j−1][i] − R[j][i] of old task i while training task j";
            CorrelationPoint Point(StepForgetting s, Func<TaskSimilarityResult, double> pick) =>
                new($"{s.OldTask} → {s.NewTask}", pick(similarities.Single(x => x.TaskA == s.OldTask && x.TaskB == s.NewTask)), s.Drop);
            correlations.Add(SimilarityForgettingCorrelation.From($"sequence {strategy}", "representation", measure, result.Steps.Select(s => Point(s, x => x.RepresentationSimilarity))));
            if (options.MeasureGradientConflict)
                correlations.Add(SimilarityForgettingCorrelation.From($"sequence {strategy}", "gradient", measure, result.Steps.Select(s => Point(s, x => x.GradientCosine))));
        }
        return new ForgettingReport { Sequences = results, Similarities = similarities, Correlations = correlations };
    }

    /// <summary>
    /// A monitor to hook into a fine-tune's epoch-end callback (<see cref="LoraTextClassificationTrainer.Options.EpochEnded"/>):
    /// it fits frozen probes on <paramref name="reference"/> now (epoch 0) and records every signal after each epoch.
    /// </summary>
    /// <param name="reference">The model before the fine-tune; it must stay alive while the monitor runs.</param>
    /// <param name="retentionTasks">Tasks whose knowledge should survive; the first also feeds drift, sharpness and conflict.</param>
    /// <param name="newTask">The task being trained, for gradient conflict; optional.</param>
    /// <param name="label">Label of the run in reports.</param>
    /// <param name="progress">Receives a line per measurement.</param>
    /// <param name="cancellationToken">Cancels the measurements (and, through the exception, the training).</param>
    public ForgettingMonitor CreateMonitor(ComparedModel reference, IReadOnlyList<ForgettingTask> retentionTasks, ForgettingTask? newTask = null,
        string label = "fine-tune", IProgress<ForgettingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        new(this, reference, retentionTasks, newTask, label, progress, cancellationToken);

    internal TaskData ReadRetention(ForgettingTask task) =>
        TaskData.Read(task, options.MaxProbeTrainExamples, options.MaxTestExamples, options.ProbeTestFraction, options.Seed, requireTest: false);

    internal List<SharpnessResult> MeasureSharpness(RetentionBaseline baseline, ComparedModel reference, ComparedModel candidate, CancellationToken cancellationToken)
    {
        var results = new List<SharpnessResult>();
        using var scope = NewDisposeScope();
        var loss = baseline.SharpnessLoss(reference, out int examples);
        results.Add(SharpnessMeter.Measure(reference.Encoder, loss, EncoderWeights.Matrices(reference.Encoder).SelectMany(m => m.Parameters).ToList(),
            baseline.Data.Name, reference.Name, "weight matrices", examples, options.PowerIterations, options.SamRho, options.Seed));
        cancellationToken.ThrowIfCancellationRequested();
        loss = baseline.SharpnessLoss(candidate, out examples);
        results.Add(SharpnessMeter.Measure(candidate.Encoder, loss, EncoderWeights.Matrices(candidate.Encoder).SelectMany(m => m.Parameters).ToList(),
            baseline.Data.Name, candidate.Name, "weight matrices", examples, options.PowerIterations, options.SamRho, options.Seed));
        if (EncoderWeights.ActiveAdapter(candidate.Encoder) is { } adapter)
        {
            cancellationToken.ThrowIfCancellationRequested();
            results.Add(SharpnessMeter.Measure(candidate.Encoder, loss, EncoderWeights.Adapters(candidate.Encoder, adapter).SelectMany(m => m.Parameters).ToList(),
                baseline.Data.Name, candidate.Name, $"adapter {adapter}", examples, options.PowerIterations, options.SamRho, options.Seed));
        }
        return results;
    }

    internal GradientConflictResult MeasureConflict(string oldTask, string newTask, ComparedModel model, Func<int, Tensor> oldLoss, Func<int, Tensor> newLoss,
        CancellationToken cancellationToken)
    {
        string? active = EncoderWeights.ActiveAdapter(model.Encoder);
        var adapters = active is null ? [] : EncoderWeights.Adapters(model.Encoder, active);
        return MeasureConflict(oldTask, newTask, model, oldLoss, newLoss, adapters, "the model has no active adapter", cancellationToken);
    }

    internal GradientConflictResult MeasureConflict(string oldTask, string newTask, ComparedModel model, Func<int, Tensor> oldLoss, Func<int, Tensor> newLoss,
        IReadOnlyList<WeightModule> adapters, string adapterNote, CancellationToken cancellationToken)
    {
        var matrices = EncoderWeights.Matrices(model.Encoder);
        var (w, a, meanCosine, skipped) = GradientMeter.Compare(model.Encoder, oldLoss, newLoss, options.GradientBatches, matrices, adapters, cancellationToken);
        return new GradientConflictResult
        {
            OldTask = oldTask,
            NewTask = newTask,
            Model = model.Name,
            Batches = options.GradientBatches,
            BatchSize = options.GradientBatchSize,
            WeightMatrices = Ordered(w.Summarize()),
            Adapters = Ordered(a.Summarize()),
            AdapterNote = a.Count > 0 ? null : adapters.Count == 0 ? adapterNote : "every adapter gradient pair was exactly zero",
            WeightMatrixConflictRate = Overall(w.Summarize()),
            AdapterConflictRate = a.Count > 0 ? Overall(a.Summarize()) : double.NaN,
            MeanGradientCosine = meanCosine,
            SkippedPairs = skipped,
        };
    }

    private TaskSimilarityResult MeasureSimilarity(ComparedModel reference, RetentionBaseline baseline, NewTaskState fresh, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var oldFeatures = RetentionBaseline.Features(reference, baseline.Data.Train, options, cancellationToken);
        double representation = TaskSimilarity.RepresentationAlignment(oldFeatures, fresh.ReferenceTrainFeatures);
        double gradient = double.NaN;
        if (options.MeasureGradientConflict)
        {
            var matrices = EncoderWeights.Matrices(reference.Encoder);
            var oldMean = GradientMeter.MeanGradient(reference.Encoder, baseline.GradientLoss(reference), options.GradientBatches, matrices, cancellationToken);
            gradient = GradientMeter.CosineOrNaN(oldMean, fresh.ReferenceMeanGradient(matrices, cancellationToken));
        }
        return new TaskSimilarityResult
        {
            TaskA = baseline.Data.Name,
            TaskB = fresh.Data.Name,
            Model = reference.Name,
            RepresentationSimilarity = representation,
            GradientCosine = gradient,
        };
    }

    /// <summary>Pairwise similarities (i &lt; j) and probe baselines b[j] at the start model.</summary>
    private (List<TaskSimilarityResult> Similarities, double[] Baseline) SimilaritiesAndBaseline(ComparedModel start, List<TaskData> data, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var features = new List<Tensor>();
        var means = new List<Tensor[]>();
        var baseline = new double[data.Count];
        var matrices = EncoderWeights.Matrices(start.Encoder);
        for (int j = 0; j < data.Count; j++)
        {
            var probeRows = data[j].Train.Sample(options.MaxProbeTrainExamples, options.Seed);
            var train = RetentionBaseline.Features(start, probeRows, options, cancellationToken);
            var test = RetentionBaseline.Features(start, data[j].Test, options, cancellationToken);
            using var probe = LinearProbe.Fit(ml, train, probeRows.Labels, data[j].ClassCount, options.ProbeL2Regularization);
            baseline[j] = probe.Accuracy(test, data[j].Test.Labels);
            features.Add(train);
            if (options.MeasureGradientConflict)
                means.Add(GradientMeter.MeanGradient(start.Encoder, RetentionBaseline.BatchLoss(start, data[j].Train, probe, options), options.GradientBatches, matrices, cancellationToken));
        }
        var similarities = new List<TaskSimilarityResult>();
        for (int i = 0; i < data.Count; i++)
            for (int j = i + 1; j < data.Count; j++)
                similarities.Add(new TaskSimilarityResult
                {
                    TaskA = data[i].Name,
                    TaskB = data[j].Name,
                    Model = start.Name,
                    RepresentationSimilarity = TaskSimilarity.RepresentationAlignment(features[i], features[j]),
                    GradientCosine = options.MeasureGradientConflict ? GradientMeter.CosineOrNaN(means[i], means[j]) : double.NaN,
                });
        return (similarities, baseline);
    }

    /// <summary>Summaries in a layer's forward order rather than alphabetically.</summary>
    internal static IReadOnlyList<GradientConflictSummary> Ordered(IReadOnlyList<GradientConflictSummary> summaries) =>
        summaries.OrderBy(s => EncoderWeights.KindNames.ToList().IndexOf(s.ModuleKind)).ToList();

    internal static double Overall(IReadOnlyList<GradientConflictSummary> summaries)
    {
        int count = summaries.Sum(s => s.Count);
        return count == 0 ? double.NaN : summaries.Sum(s => s.ConflictRate * s.Count) / count;
    }

    internal static void Report(IProgress<ForgettingProgress>? progress, string stage, string message) =>
        progress?.Report(new ForgettingProgress(stage, message));

    /// <summary>The new task of <see cref="Evaluate"/>: its rows, probes on both models, and its features at the reference.</summary>
    private sealed class NewTaskState : IDisposable
    {
        private readonly ForgettingEvaluator owner;
        private readonly ComparedModel reference;
        private Tensor[]? referenceMean;

        private NewTaskState(ForgettingEvaluator owner, ComparedModel reference, TaskData data, LinearProbe referenceProbe, LinearProbe candidateProbe, Tensor referenceTrainFeatures)
        {
            this.owner = owner;
            this.reference = reference;
            Data = data;
            ReferenceProbe = referenceProbe;
            CandidateProbe = candidateProbe;
            ReferenceTrainFeatures = referenceTrainFeatures;
        }

        public TaskData Data { get; }

        public LinearProbe ReferenceProbe { get; }

        public LinearProbe CandidateProbe { get; }

        public Tensor ReferenceTrainFeatures { get; }

        public static NewTaskState Create(ForgettingEvaluator owner, ComparedModel reference, ComparedModel candidate, ForgettingTask task, CancellationToken cancellationToken)
        {
            var o = owner.options;
            var data = owner.ReadRetention(task);
            using var scope = NewDisposeScope();
            var referenceTrain = RetentionBaseline.Features(reference, data.Train, o, cancellationToken);
            var candidateTrain = RetentionBaseline.Features(candidate, data.Train, o, cancellationToken);
            var referenceProbe = LinearProbe.Fit(owner.ml, referenceTrain, data.Train.Labels, data.ClassCount, o.ProbeL2Regularization);
            var candidateProbe = LinearProbe.Fit(owner.ml, candidateTrain, data.Train.Labels, data.ClassCount, o.ProbeL2Regularization);
            return new NewTaskState(owner, reference, data, referenceProbe, candidateProbe, referenceTrain.DetachFromDisposeScope());
        }

        /// <summary>The new task's mean gradient at the reference, computed once.</summary>
        public Tensor[] ReferenceMeanGradient(IReadOnlyList<WeightModule> matrices, CancellationToken cancellationToken)
        {
            if (referenceMean is null)
            {
                var mean = GradientMeter.MeanGradient(reference.Encoder, RetentionBaseline.BatchLoss(reference, Data.Train, ReferenceProbe, owner.options),
                    owner.options.GradientBatches, matrices, cancellationToken);
                referenceMean = mean.Select(t => t.DetachFromDisposeScope()).ToArray();
            }
            return referenceMean;
        }

        public void Dispose()
        {
            ReferenceProbe.Dispose();
            CandidateProbe.Dispose();
            ReferenceTrainFeatures.Dispose();
            if (referenceMean is not null) foreach (var t in referenceMean) t.Dispose();
        }
    }
}
