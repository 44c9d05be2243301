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
    private readonly ForgettingMeasurements measurements;

    /// <summary>Creates an evaluator.</summary>
    /// <param name="mlContext">The ML.NET context; its probes (L-BFGS maximum entropy) run in it, and its GPU settings choose the training device of task sequences.</param>
    /// <param name="options">Settings; defaults when null. The object is validated and then read at each call.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is invalid (the message names it).</exception>
    public ForgettingEvaluator(MLContext mlContext, Options? options = null)
    {
        ml = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
        this.options = (options ?? new Options()).Validate();
        device = MLContextAccess.Device(mlContext);
        measurements = new ForgettingMeasurements(ml, this.options);
    }

    /// <summary>The settings in use.</summary>
    public Options Settings => options;

    internal ForgettingMeasurements Measurements => measurements;

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
        ForgettingMeasurements.NewTaskState? fresh = null;
        try
        {
            if (newTask is not null)
            {
                ForgettingMeasurements.Report(progress, "gradients", $"Reading the new task '{newTask.Name}' and fitting its probes on both models");
                fresh = ForgettingMeasurements.NewTaskState.Create(measurements, reference, candidate, newTask, cancellationToken);
            }

            foreach (var task in retentionTasks)
            {
                var data = measurements.ReadRetention(task);
                ForgettingMeasurements.Report(progress, "retention", $"{task.Name}: {data.Train.Count} probe-training and {data.Test.Count} test rows, {data.ClassCount} classes");
                using var baseline = RetentionBaseline.Fit(ml, options, reference, data, cancellationToken);
                var (frozen, refit) = baseline.Measure(candidate, refit: true, cancellationToken);
                var result = baseline.Result(candidate, frozen, refit!.Value);
                retention.Add(result);
                ForgettingMeasurements.Report(progress, "retention", $"{task.Name}: reference {result.ReferenceAccuracy:P1}, frozen probe {result.FrozenProbeAccuracy:P1}, refit probe {result.RefitProbeAccuracy:P1}");

                ForgettingMeasurements.Report(progress, "drift", $"{task.Name}: representation and attention drift on {Math.Min(options.DriftExamples, data.Test.Count)} inputs");
                internals.Add(InternalDriftMeter.Compare(reference, candidate, task.Name, baseline.DriftTexts, options.MaxSequenceLength,
                    options.BatchSize, options.HeadDriftThreshold, cancellationToken));

                if (options.MeasureSharpness)
                {
                    ForgettingMeasurements.Report(progress, "sharpness", $"{task.Name}: top Hessian eigenvalue and SAM sharpness of the old-task loss");
                    sharpness.AddRange(measurements.MeasureSharpness(baseline, reference, candidate, cancellationToken));
                }

                if (fresh is not null)
                {
                    if (options.MeasureGradientConflict)
                    {
                        ForgettingMeasurements.Report(progress, "gradients", $"{task.Name} vs {fresh.Data.Name}: gradient conflict at '{candidate.Name}'");
                        conflicts.Add(measurements.MeasureConflict(task.Name, fresh.Data.Name, candidate, baseline.GradientLoss(candidate),
                            RetentionBaseline.BatchLoss(candidate, fresh.Data.Train, fresh.CandidateProbe, options), cancellationToken));
                    }
                    ForgettingMeasurements.Report(progress, "similarity", $"{task.Name} vs {fresh.Data.Name}: similarity at '{reference.Name}'");
                    similarities.Add(measurements.MeasureSimilarity(reference, baseline, fresh, cancellationToken));
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

        ForgettingMeasurements.Report(progress, "retention", $"Done in {clock.Elapsed.TotalSeconds:F0} s");
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
    /// Trains the task sequence once per method, each run starting from a copy of <paramref name="start"/> (which is
    /// not changed), and fills the accuracy matrix (with every test row's result, for bootstrap intervals), its
    /// summaries, and per step the gradient conflict, per task the sharpness and drift. Task similarities are measured
    /// once on <paramref name="start"/> and correlated with each step's forgetting.
    /// </summary>
    /// <param name="start">The model every run starts from; its adapters, if any, are folded into the copy's weights.</param>
    /// <param name="tasks">Tasks in training order, at least two, each with a test split.</param>
    /// <param name="methods">Which methods to run (each gets its own copy), with distinct names; a bare <see cref="SequenceStrategy"/> converts to its plain method.</param>
    /// <param name="progress">Receives a line per stage and the training progress.</param>
    /// <param name="cancellationToken">Cancels between batches.</param>
    /// <returns>A report with the sequence, similarity and correlation sections filled.</returns>
    /// <exception cref="ArgumentException">Fewer than two tasks, a task without test data or with a missing column, no method, or a method's setting out of range (named).</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public ForgettingReport RunSequences(ComparedModel start, IReadOnlyList<ForgettingTask> tasks, IReadOnlyList<SequenceMethod> methods,
        IProgress<ForgettingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(tasks);
        ArgumentNullException.ThrowIfNull(methods);
        if (tasks.Count < 2) throw new ArgumentException($"A task sequence needs at least two tasks; got {tasks.Count}.", nameof(tasks));
        if (methods.Count == 0) throw new ArgumentException("Name at least one method.", nameof(methods));
        if (tasks.Select(t => t.Name).Distinct(StringComparer.Ordinal).Count() != tasks.Count)
            throw new ArgumentException("Task names must be unique.", nameof(tasks));
        foreach (var method in methods) method.Validate();
        if (methods.GroupBy(m => m.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"Two methods are named '{twice.Key}': give each its own name (reports tell them apart by it).", nameof(methods));
        options.Validate();

        var data = tasks.Select(t => TaskData.Read(t, options.MaxTrainExamples, options.MaxTestExamples, options.ProbeTestFraction, options.Seed, requireTest: true)).ToList();
        foreach (var d in data) ForgettingMeasurements.Report(progress, "sequence", $"{d.Name}: {d.Train.Count} train and {d.Test.Count} test rows, {d.ClassCount} classes");

        ForgettingMeasurements.Report(progress, "similarity", $"Task similarities and probe baselines at '{start.Name}'");
        var (similarities, baseline, baselineCorrect) = measurements.SimilaritiesAndBaseline(start, data, cancellationToken);

        var results = new List<SequenceResult>();
        var correlations = new List<SimilarityForgettingCorrelation>();
        // Methods of one kind train the first task alike; with no per-task measurement that would differ (the kept
        // probe of the gradient conflict, the sharpness), the later ones start from the first one's state.
        using var firstSteps = options.MeasureGradientConflict || options.MeasureSharpness ? null : new FirstStepCache();
        foreach (var method in methods)
        {
            var runner = new TaskSequenceRunner(measurements, device, start, data, baseline, baselineCorrect, method, firstSteps, progress, cancellationToken);
            var result = runner.Run();
            results.Add(result);
            const string measure = "step forgetting R[j−1][i] − R[j][i] of old task i while training task j";
            CorrelationPoint Point(StepForgetting s, Func<TaskSimilarityResult, double> pick) =>
                new($"{s.OldTask} → {s.NewTask}", pick(similarities.Single(x => x.TaskA == s.OldTask && x.TaskB == s.NewTask)), s.Drop);
            correlations.Add(SimilarityForgettingCorrelation.From($"sequence {method.Name}", "representation", measure, result.Steps.Select(s => Point(s, x => x.RepresentationSimilarity))));
            if (options.MeasureGradientConflict)
                correlations.Add(SimilarityForgettingCorrelation.From($"sequence {method.Name}", "gradient", measure, result.Steps.Select(s => Point(s, x => x.GradientCosine))));
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
        new(measurements, reference, retentionTasks, newTask, label, progress, cancellationToken);
}
