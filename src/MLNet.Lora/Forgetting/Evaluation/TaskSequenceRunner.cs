using System.Diagnostics;
using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using MLNet.Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Trains a task sequence with one strategy through <see cref="FineTuningLoop"/> (a head per task) and measures, after
/// every step, the accuracy on every task; before every step, the gradient conflict; after every task, its sharpness;
/// at the end, how far each old task's representation moved.
/// </summary>
internal sealed class TaskSequenceRunner
{
    private const string SharedAdapter = "shared";

    private readonly ForgettingEvaluator evaluator;
    private readonly ForgettingEvaluator.Options options;
    private readonly Device device;
    private readonly ComparedModel start;
    private readonly IReadOnlyList<TaskData> tasks;
    private readonly double[] baseline;
    private readonly SequenceStrategy strategy;
    private readonly IProgress<ForgettingProgress>? progress;
    private readonly CancellationToken cancellationToken;

    private BertModel encoder = null!;
    private readonly List<TextClassificationModel> models = [];
    private readonly List<LabeledTexts> train = [];
    private readonly List<LabeledTexts> test = [];
    private (int Task, LinearProbe Probe)? nextTaskProbe;   // R[i][i+1]'s probe, reused by the conflict before step i+1

    public TaskSequenceRunner(ForgettingEvaluator evaluator, ForgettingEvaluator.Options options, Device device, ComparedModel start,
        IReadOnlyList<TaskData> tasks, double[] baseline, SequenceStrategy strategy, IProgress<ForgettingProgress>? progress, CancellationToken cancellationToken)
    {
        this.evaluator = evaluator;
        this.options = options;
        this.device = device;
        this.start = start;
        this.tasks = tasks;
        this.baseline = baseline;
        this.strategy = strategy;
        this.progress = progress;
        this.cancellationToken = cancellationToken;
    }

    private bool UsesAdapters => strategy != SequenceStrategy.FullFineTuning;

    public SequenceResult Run()
    {
        var clock = Stopwatch.StartNew();
        int t = tasks.Count;
        var accuracy = Enumerable.Range(0, t).Select(_ => new double[t]).ToArray();
        var sharpness = new List<SharpnessResult>();
        var conflicts = new List<GradientConflictResult>();
        var drift = new List<InternalComparison>();
        var trained = new long[t];
        var snapshots = new List<BertModel>();

        encoder = LoraInjector.MergeAndUnload(start.Encoder);
        try
        {
            encoder.to(device);
            var tokenizer = start.Tokenizer;
            foreach (var task in tasks)
            {
                train.Add(task.Train.Encode(tokenizer, options.MaxSequenceLength));
                test.Add(task.Test.Encode(tokenizer, options.MaxSequenceLength));
            }

            for (int i = 0; i < t; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (i > 0 && options.MeasureGradientConflict)
                {
                    Report($"step {i + 1}: gradient conflict of earlier tasks with '{tasks[i].Name}'");
                    conflicts.Add(ConflictBefore(i));
                }

                string? adapter = AdapterFor(i);
                if (adapter is not null && (strategy == SequenceStrategy.AdapterPerTask || i == 0))
                {
                    torch.random.manual_seed(options.Seed * 1000 + 500 + i);
                    LoraInjector.Inject(encoder, options.Lora, adapter);
                }
                if (UsesAdapters) LoraInjector.SetActiveAdapter(encoder, adapter);

                torch.random.manual_seed(options.Seed * 1000 + i);
                var model = new TextClassificationModel(encoder, tasks[i].ClassCount, options.Pooling, options.HeadDropout);
                model.to(device);
                models.Add(model);
                var mode = UsesAdapters ? FineTuningMode.Lora : FineTuningMode.Full;
                FineTuningLoop.PrepareParameters(model, mode, adapter ?? LoraInjector.DefaultAdapterName);
                trained[i] = encoder.parameters().Where(p => p.requires_grad).Sum(p => p.numel());

                Report($"step {i + 1}/{t}: training '{tasks[i].Name}' ({train[i].Count} rows, {options.Epochs} epoch(s), {trained[i]:N0} encoder parameters)");
                var settings = new FineTuningSettings
                {
                    Mode = mode,
                    MaxEpochs = options.Epochs,
                    BatchSize = options.TrainBatchSize,
                    LearningRate = UsesAdapters ? options.LoraLearningRate : options.FullLearningRate,
                    Seed = options.Seed * 1000 + i,
                    MaxSequenceLength = options.MaxSequenceLength,
                };
                var trainingProgress = progress is null ? null
                    : new InlineProgress<LoraTrainingProgress>(p => progress.Report(new ForgettingProgress("sequence", $"{strategy} {tasks[i].Name}: {p}")));
                new FineTuningLoop(model, tokenizer, settings, device).Run(train[i], null, trainingProgress, null, cancellationToken);

                if (options.MeasureSharpness)
                {
                    Report($"step {i + 1}: sharpness of '{tasks[i].Name}' over the {trained[i]:N0} parameters that trained");
                    sharpness.Add(SharpnessAfter(i));
                }

                for (int j = 0; j < t; j++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    accuracy[i][j] = j <= i ? HeadAccuracy(j) : ProbeAccuracy(j, i);
                }
                if (UsesAdapters) LoraInjector.SetActiveAdapter(encoder, adapter);
                Report($"after '{tasks[i].Name}': " + string.Join(", ", Enumerable.Range(0, t).Select(j => $"{tasks[j].Name} {accuracy[i][j]:P1}{(j > i ? " (probe)" : "")}")));

                if (i < t - 1)
                {
                    ActivateFor(i);
                    snapshots.Add(LoraInjector.MergeAndUnload(encoder));
                }
            }

            var final = ComparedModel.FromEncoder(encoder, start.Tokenizer, $"after {tasks[^1].Name}");
            for (int j = 0; j < t - 1; j++)
            {
                Report($"drift of '{tasks[j].Name}' between the end of its training and the end of the sequence");
                ActivateFor(j);
                var before = ComparedModel.FromEncoder(snapshots[j], start.Tokenizer, $"after {tasks[j].Name}");
                drift.Add(InternalDriftMeter.Compare(before, final, tasks[j].Name, tasks[j].Test.Texts.Take(options.DriftExamples).ToList(),
                    options.MaxSequenceLength, options.BatchSize, options.HeadDriftThreshold, cancellationToken));
            }
        }
        finally
        {
            foreach (var s in snapshots) s.Dispose();
            foreach (var m in models) m.Classifier.Dispose();
            nextTaskProbe?.Probe.Dispose();
            encoder.Dispose();
        }

        var matrix = new AccuracyMatrix(accuracy, baseline);
        var steps = new List<StepForgetting>();
        for (int j = 1; j < t; j++)
            for (int i = 0; i < j; i++)
                steps.Add(new StepForgetting { OldTask = tasks[i].Name, NewTask = tasks[j].Name, Before = accuracy[j - 1][i], After = accuracy[j][i] });
        return new SequenceResult
        {
            Strategy = strategy,
            Tasks = tasks.Select(x => x.Name).ToArray(),
            Accuracy = accuracy,
            Baseline = baseline,
            AverageAccuracy = matrix.AverageAccuracy,
            AverageForgetting = matrix.AverageForgetting(ForgettingConvention.Max),
            AverageForgettingFirst = matrix.AverageForgetting(ForgettingConvention.First),
            BackwardTransfer = matrix.BackwardTransfer,
            ForwardTransfer = matrix.ForwardTransfer,
            Steps = steps,
            Sharpness = sharpness,
            GradientConflicts = conflicts,
            Drift = drift,
            TrainedParameters = trained,
            Seconds = clock.Elapsed.TotalSeconds,
        };
    }

    /// <summary>The adapter task <paramref name="i"/> trains and is evaluated with; null for full fine-tuning.</summary>
    private string? AdapterFor(int i) => strategy switch
    {
        SequenceStrategy.SharedAdapter => SharedAdapter,
        SequenceStrategy.AdapterPerTask => $"task{i}",
        _ => null,
    };

    /// <summary>Makes the encoder compute as it does for task <paramref name="i"/>.</summary>
    private void ActivateFor(int i)
    {
        if (UsesAdapters) LoraInjector.SetActiveAdapter(encoder, AdapterFor(i));
    }

    /// <summary>
    /// Activates what a task that has not been trained yet would start from: the shared adapter, or (one adapter per
    /// task) no adapter, since its own adapter does not exist yet and would start at ΔW = 0.
    /// </summary>
    private void ActivateForUntrained()
    {
        if (UsesAdapters) LoraInjector.SetActiveAdapter(encoder, strategy == SequenceStrategy.SharedAdapter ? SharedAdapter : null);
    }

    private double HeadAccuracy(int j)
    {
        ActivateFor(j);
        var settings = new FineTuningSettings { MaxSequenceLength = options.MaxSequenceLength };
        return new FineTuningLoop(models[j], start.Tokenizer, settings, device).Evaluate(test[j], options.BatchSize).Accuracy;
    }

    private double ProbeAccuracy(int j, int i)
    {
        var probe = FitProbe(j);
        using var scope = NewDisposeScope();
        var current = ComparedModel.FromEncoder(encoder, start.Tokenizer, "current");
        double accuracy = probe.Accuracy(RetentionBaseline.Features(current, tasks[j].Test, options, cancellationToken), tasks[j].Test.Labels);
        // The next task's probe at this state is exactly what the gradient conflict before the next step reads it with.
        if (j == i + 1 && options.MeasureGradientConflict) KeepNextTaskProbe(j, probe);
        else probe.Dispose();
        return accuracy;
    }

    /// <summary>A linear probe for task <paramref name="j"/> on the encoder as an untrained task would start from it.</summary>
    private LinearProbe FitProbe(int j)
    {
        ActivateForUntrained();
        var current = ComparedModel.FromEncoder(encoder, start.Tokenizer, "current");
        using var scope = NewDisposeScope();
        var probeRows = tasks[j].Train.Sample(options.MaxProbeTrainExamples, options.Seed);
        var features = RetentionBaseline.Features(current, probeRows, options, cancellationToken);
        return LinearProbe.Fit(evaluator.Context, features, probeRows.Labels, tasks[j].ClassCount, options.ProbeL2Regularization);
    }

    private void KeepNextTaskProbe(int task, LinearProbe probe)
    {
        nextTaskProbe?.Probe.Dispose();
        nextTaskProbe = (task, probe);
    }

    /// <summary>Cross-entropy of task <paramref name="j"/>'s own head on the given rows of <paramref name="data"/>, with task j's adapter active.</summary>
    private Tensor HeadLoss(int j, LabeledTexts data, IReadOnlyList<int> indices)
    {
        ActivateFor(j);
        var (batch, labels) = EncoderFeatures.Collate(data, indices, start.Tokenizer.PadTokenId, device);
        var features = EncoderFeatures.PooledWithGrad(encoder, batch, options.Pooling);
        return F.cross_entropy(models[j].Classifier.forward(features), labels);
    }

    private SharpnessResult SharpnessAfter(int i)
    {
        var parameters = EncoderWeights.Trainable(encoder);
        var indices = Enumerable.Range(0, Math.Min(options.SharpnessExamples, test[i].Count)).ToArray();
        string set = strategy == SequenceStrategy.FullFineTuning ? "trainable (every encoder weight)" : $"adapter {AdapterFor(i)}";
        using var scope = NewDisposeScope();
        var result = SharpnessMeter.Measure(encoder, () => HeadLoss(i, test[i], indices), parameters.ToList(), tasks[i].Name, $"{strategy} after {tasks[i].Name}",
            set, indices.Length, options.PowerIterations, options.SamRho, options.Seed);
        ActivateFor(i);
        return result;
    }

    /// <summary>
    /// At the model after task i − 1: the earlier tasks' loss (each through its own head and adapter, averaged) against the
    /// loss of task i read out by a linear probe fitted on the current features (its own head is not trained yet; a fresh
    /// random head would make the gradient almost zero and its direction arbitrary).
    /// </summary>
    private GradientConflictResult ConflictBefore(int i)
    {
        using var scope = NewDisposeScope();
        ActivateForUntrained();
        var current = ComparedModel.FromEncoder(encoder, start.Tokenizer, $"{strategy} after {tasks[i - 1].Name}");
        using var probe = nextTaskProbe is { } kept && kept.Task == i ? kept.Probe : FitProbe(i);
        nextTaskProbe = null;
        var newLoss = RetentionBaseline.BatchLoss(current, tasks[i].Train, probe, options);

        Tensor OldLoss(int b)
        {
            Tensor? sum = null;
            for (int j = 0; j < i; j++)
            {
                var loss = HeadLoss(j, train[j], RetentionBaseline.GradientBatch(train[j].Count, b, options.GradientBatchSize));
                sum = sum is null ? loss : sum + loss;
            }
            ActivateForUntrained();
            return sum! / i;
        }
        Tensor NewLoss(int b)
        {
            ActivateForUntrained();
            return newLoss(b);
        }

        var adapters = strategy == SequenceStrategy.SharedAdapter ? EncoderWeights.Adapters(encoder, SharedAdapter) : [];
        string note = strategy == SequenceStrategy.AdapterPerTask
            ? "one adapter per task: the new task trains a fresh adapter that the earlier tasks' losses do not depend on"
            : "full fine-tuning has no adapters";
        var old = string.Join("+", tasks.Take(i).Select(x => x.Name));
        return evaluator.MeasureConflict(old, tasks[i].Name, current, OldLoss, NewLoss, adapters, note, cancellationToken);
    }

    private void Report(string message) => ForgettingEvaluator.Report(progress, "sequence", $"{strategy}: {message}");
}
