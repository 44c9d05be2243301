using System.Diagnostics;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Records the forgetting signals of a fine-tune epoch by epoch: outside, the retention tasks' accuracy through frozen
/// probes fitted on the reference; inside, representation and attention drift against the reference, the sharpness of
/// the first retention task's loss, and (with the new task) gradient conflict. Create it with
/// <see cref="ForgettingEvaluator.CreateMonitor"/> before training (that measures epoch 0) and hook
/// <see cref="OnEpochEnded"/> into the trainer.
/// </summary>
/// <example>
/// <code>
/// using var monitor = evaluator.CreateMonitor(ComparedModel.FromEncoder(baseEncoder), [sst2], newTask: agNews, label: "LoRA");
/// var options = new LoraTextClassificationTrainer.Options { Encoder = baseEncoder, MaxEpochs = 5, EpochEnded = monitor.OnEpochEnded };
/// pipeline.Fit(train);
/// Console.WriteLine(monitor.Timeline);   // signals per epoch, onsets, verdict
/// </code>
/// </example>
public sealed class ForgettingMonitor : IDisposable
{
    private readonly ForgettingMeasurements measurements;
    private readonly ForgettingEvaluator.Options options;
    private readonly ComparedModel reference;
    private readonly List<RetentionBaseline> baselines = [];
    private readonly TaskData? newTask;
    private readonly IProgress<ForgettingProgress>? progress;
    private readonly CancellationToken cancellationToken;
    private readonly List<TimelinePoint> points = [];
    private readonly string label;
    private readonly List<string> taskNames = [];
    private bool disposed;

    internal ForgettingMonitor(ForgettingMeasurements measurements, ComparedModel reference, IReadOnlyList<ForgettingTask> retentionTasks, ForgettingTask? newTask,
        string label, IProgress<ForgettingProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(retentionTasks);
        if (retentionTasks.Count == 0) throw new ArgumentException("Name at least one retention task.", nameof(retentionTasks));
        ArgumentException.ThrowIfNullOrWhiteSpace(label);
        this.measurements = measurements;
        options = measurements.Options.Validate();
        this.reference = reference;
        this.label = label;
        this.progress = progress;
        this.cancellationToken = cancellationToken;
        try
        {
            foreach (var task in retentionTasks)
            {
                var data = measurements.ReadRetention(task);
                ForgettingMeasurements.Report(progress, "monitor", $"{label}: fitting the frozen probe of '{task.Name}' on '{reference.Name}'");
                baselines.Add(RetentionBaseline.Fit(measurements.Context, options, reference, data, cancellationToken));
                taskNames.Add(task.Name);
            }
            this.newTask = newTask is null ? null : measurements.ReadRetention(newTask);
            points.Add(Measure(reference, epoch: 0, trainingLoss: null, validationAccuracy: null));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The signals recorded so far (epoch 0 first), with onsets and verdict.</summary>
    public ForgettingTimeline Timeline => new()
    {
        Label = label,
        RetentionTasks = taskNames.ToArray(),
        Points = points.ToList(),
        Thresholds = options.Thresholds,
    };

    /// <summary>
    /// The epoch-end hook: pass it as <see cref="LoraTextClassificationTrainer.Options.EpochEnded"/> or to
    /// <see cref="FineTuningLoop.Run"/>. Measures the model between epochs and leaves it as found.
    /// </summary>
    /// <param name="context">The trainer's epoch context.</param>
    /// <exception cref="ObjectDisposedException">The monitor was disposed.</exception>
    /// <exception cref="OperationCanceledException">The monitor's token was cancelled (this also ends the training).</exception>
    public void OnEpochEnded(EpochEndedContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(disposed, this);
        if (context.MaxSequenceLength != options.MaxSequenceLength)
            ForgettingMeasurements.Report(progress, "monitor",
                $"{label}: training uses {context.MaxSequenceLength} tokens per text, the monitor {options.MaxSequenceLength} (Options.MaxSequenceLength); the signals use the monitor's.");
        points.Add(Measure(ComparedModel.FromEpoch(context), context.Epoch, context.TrainingLoss, context.ValidationAccuracy));
    }

    private TimelinePoint Measure(ComparedModel model, int epoch, double? trainingLoss, double? validationAccuracy)
    {
        var clock = Stopwatch.StartNew();
        cancellationToken.ThrowIfCancellationRequested();
        var frozen = new Dictionary<string, double>();
        var refit = new Dictionary<string, double>();
        foreach (var baseline in baselines)
        {
            var (f, r) = baseline.Measure(model, options.RefitProbesEachEpoch, cancellationToken);
            frozen[baseline.Data.Name] = f;
            if (r is { } value) refit[baseline.Data.Name] = value;
        }
        double drop = baselines.Average(b => b.ReferenceAccuracy - frozen[b.Data.Name]);

        var first = baselines[0];
        var drift = InternalDriftMeter.Compare(reference, model, first.Data.Name, first.DriftTexts, options.MaxSequenceLength, options.BatchSize,
            options.HeadDriftThreshold, cancellationToken);

        double? top = null, sam = null;
        if (options.MeasureSharpness)
        {
            using var scope = NewDisposeScope();
            var loss = first.SharpnessLoss(model, out int examples);
            var matrices = EncoderWeights.Matrices(model.Encoder).SelectMany(m => m.Parameters).ToList();
            var s = SharpnessMeter.Measure(model.Encoder, loss, matrices, first.Data.Name, model.Name, "weight matrices", examples,
                options.PowerIterations, options.SamRho, options.Seed);
            (top, sam) = (s.TopHessianEigenvalue, s.SamSharpness);
        }

        double? weightConflict = null, adapterConflict = null;
        if (newTask is not null && options.MeasureGradientConflict)
        {
            using var scope = NewDisposeScope();
            using var probe = measurements.FitProbe(model, newTask.Train, newTask.ClassCount, cancellationToken);
            var conflict = measurements.MeasureConflict(first.Data.Name, newTask.Name, model, first.GradientLoss(model),
                RetentionBaseline.BatchLoss(model, newTask.Train, probe, options), cancellationToken);
            weightConflict = conflict.WeightMatrixConflictRate;
            adapterConflict = double.IsNaN(conflict.AdapterConflictRate) ? null : conflict.AdapterConflictRate;
        }

        var point = new TimelinePoint
        {
            Epoch = epoch,
            TrainingLoss = trainingLoss,
            ValidationAccuracy = validationAccuracy,
            FrozenProbeAccuracy = frozen,
            RefitProbeAccuracy = refit,
            RetentionDrop = drop,
            RepresentationDrift = drift.RepresentationDrift,
            MaxRepresentationDrift = drift.RepresentationDrift.Max(),
            AttentionDriftPerLayer = drift.MeanAttentionDriftPerLayer,
            MaxAttentionDrift = drift.MeanAttentionDriftPerLayer.DefaultIfEmpty(0).Max(),
            ShareOfHeadsAbove = drift.ShareOfHeadsAbove,
            TopHessianEigenvalue = top,
            SamSharpness = sam,
            WeightMatrixConflictRate = weightConflict,
            AdapterConflictRate = adapterConflict,
            MeasurementSeconds = clock.Elapsed.TotalSeconds,
        };
        ForgettingMeasurements.Report(progress, "monitor",
            $"{label} epoch {epoch}: retention drop {drop:F4}, max representation drift {point.MaxRepresentationDrift:F4}, max attention JS {point.MaxAttentionDrift:F4}" +
            (top is { } t ? $", top eigenvalue {t:G4}" : "") + $" ({point.MeasurementSeconds:F0} s)");
        return point;
    }

    /// <summary>Releases the probes and cached features (the reference model is the caller's).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var b in baselines) b.Dispose();
        baselines.Clear();
    }
}
