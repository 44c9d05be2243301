using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// The forgetting measurements in one place: reading tasks, probes, retention baselines, sharpness, gradient conflict,
/// task similarity and drift. <see cref="ForgettingEvaluator"/>, <see cref="ForgettingMonitor"/> and the task-sequence
/// runner all call this service; none of them calls back into another.
/// </summary>
internal sealed class ForgettingMeasurements
{
    private readonly MLContext ml;
    private readonly ForgettingEvaluator.Options options;

    public ForgettingMeasurements(MLContext ml, ForgettingEvaluator.Options options)
    {
        this.ml = ml;
        this.options = options;
    }

    public MLContext Context => ml;

    public ForgettingEvaluator.Options Options => options;

    public TaskData ReadRetention(ForgettingTask task) =>
        TaskData.Read(task, options.MaxProbeTrainExamples, options.MaxTestExamples, options.ProbeTestFraction, options.Seed, requireTest: false);

    public List<SharpnessResult> MeasureSharpness(RetentionBaseline baseline, ComparedModel reference, ComparedModel candidate, CancellationToken cancellationToken)
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

    public GradientConflictResult MeasureConflict(string oldTask, string newTask, ComparedModel model, Func<int, Tensor> oldLoss, Func<int, Tensor> newLoss,
        CancellationToken cancellationToken)
    {
        string? active = EncoderWeights.ActiveAdapter(model.Encoder);
        var adapters = active is null ? [] : EncoderWeights.Adapters(model.Encoder, active);
        return MeasureConflict(oldTask, newTask, model, oldLoss, newLoss, adapters, "the model has no active adapter", cancellationToken);
    }

    public GradientConflictResult MeasureConflict(string oldTask, string newTask, ComparedModel model, Func<int, Tensor> oldLoss, Func<int, Tensor> newLoss,
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

    public TaskSimilarityResult MeasureSimilarity(ComparedModel reference, RetentionBaseline baseline, NewTaskState fresh, CancellationToken cancellationToken)
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
    public (List<TaskSimilarityResult> Similarities, double[] Baseline, bool[][] BaselineCorrect) SimilaritiesAndBaseline(ComparedModel start, List<TaskData> data, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var features = new List<Tensor>();
        var means = new List<Tensor[]>();
        var baseline = new double[data.Count];
        var baselineCorrect = new bool[data.Count][];
        var matrices = EncoderWeights.Matrices(start.Encoder);
        for (int j = 0; j < data.Count; j++)
        {
            var probeRows = data[j].Train.Sample(options.MaxProbeTrainExamples, options.Seed);
            var train = RetentionBaseline.Features(start, probeRows, options, cancellationToken);
            var test = RetentionBaseline.Features(start, data[j].Test, options, cancellationToken);
            using var probe = LinearProbe.Fit(ml, train, probeRows.Labels, data[j].ClassCount, options.ProbeL2Regularization);
            baselineCorrect[j] = probe.Correct(test, data[j].Test.Labels);
            baseline[j] = LinearProbe.Share(baselineCorrect[j]);
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
        return (similarities, baseline, baselineCorrect);
    }

    /// <summary>Summaries in a layer's forward order rather than alphabetically.</summary>
    public static IReadOnlyList<GradientConflictSummary> Ordered(IReadOnlyList<GradientConflictSummary> summaries) =>
        summaries.OrderBy(s => EncoderWeights.KindNames.ToList().IndexOf(s.ModuleKind)).ToList();

    public static double Overall(IReadOnlyList<GradientConflictSummary> summaries)
    {
        int count = summaries.Sum(s => s.Count);
        return count == 0 ? double.NaN : summaries.Sum(s => s.ConflictRate * s.Count) / count;
    }

    /// <summary>A linear probe fitted on <paramref name="model"/>'s features of <paramref name="rows"/>.</summary>
    public LinearProbe FitProbe(ComparedModel model, TaskRows rows, int classCount, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var features = RetentionBaseline.Features(model, rows, options, cancellationToken);
        return LinearProbe.Fit(ml, features, rows.Labels, classCount, options.ProbeL2Regularization);
    }

    /// <summary>Per test row of <paramref name="task"/>, whether <paramref name="probe"/> reads <paramref name="model"/>'s features right.</summary>
    public bool[] ProbeCorrect(ComparedModel model, TaskData task, LinearProbe probe, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        return probe.Correct(RetentionBaseline.Features(model, task.Test, options, cancellationToken), task.Test.Labels);
    }

    public static void Report(IProgress<ForgettingProgress>? progress, string stage, string message) =>
        progress?.Report(new ForgettingProgress(stage, message));

    /// <summary>The new task of <see cref="ForgettingEvaluator.Evaluate"/>: its rows, probes on both models, and its features at the reference.</summary>
    internal sealed class NewTaskState : IDisposable
    {
        private readonly ForgettingMeasurements owner;
        private readonly ComparedModel reference;
        private Tensor[]? referenceMean;

        private NewTaskState(ForgettingMeasurements owner, ComparedModel reference, TaskData data, LinearProbe referenceProbe, LinearProbe candidateProbe, Tensor referenceTrainFeatures)
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

        public static NewTaskState Create(ForgettingMeasurements owner, ComparedModel reference, ComparedModel candidate, ForgettingTask task, CancellationToken cancellationToken)
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
