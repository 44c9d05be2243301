using System.Diagnostics;
using MLNet.Lora.Adapters;
using MLNet.Lora.Encoders;
using MLNet.Lora.MultiAdapter;
using MLNet.Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// Trains a task sequence with one <see cref="SequenceMethod"/> through <see cref="FineTuningLoop"/> (a head per task)
/// and measures, after every step, the accuracy on every task (row by row); before every step, the gradient conflict;
/// after every task, its sharpness; at the end, how far each old task's representation moved. All measurements go
/// through <see cref="ForgettingMeasurements"/>; which adapter computes is set by scopes, never left switched.
/// </summary>
internal sealed class TaskSequenceRunner
{
    private const string SharedAdapter = "shared";
    private const string MergedAdapter = "merged";

    private readonly ForgettingMeasurements measurements;
    private readonly ForgettingEvaluator.Options options;
    private readonly Device device;
    private readonly ComparedModel start;
    private readonly IReadOnlyList<TaskData> tasks;
    private readonly double[] baseline;
    private readonly bool[][] baselineCorrect;
    private readonly SequenceMethod method;
    private readonly IProgress<ForgettingProgress>? progress;
    private readonly CancellationToken cancellationToken;

    private BertModel encoder = null!;
    private readonly List<TextClassificationModel> models = [];
    private readonly List<LabeledTexts> train = [];
    private readonly List<LabeledTexts> test = [];
    private readonly Dictionary<string, List<Tensor>> earlierA = new(StringComparer.Ordinal);   // O-LoRA: folded adapters' A by layer
    private (int Task, LinearProbe Probe)? nextTaskProbe;   // R[i][i+1]'s probe, reused by the conflict before step i+1
    private readonly FirstStepCache? firstSteps;

    public TaskSequenceRunner(ForgettingMeasurements measurements, Device device, ComparedModel start, IReadOnlyList<TaskData> tasks,
        double[] baseline, bool[][] baselineCorrect, SequenceMethod method, FirstStepCache? firstSteps, IProgress<ForgettingProgress>? progress,
        CancellationToken cancellationToken)
    {
        this.firstSteps = firstSteps;
        this.measurements = measurements;
        options = measurements.Options;
        this.device = device;
        this.start = start;
        this.tasks = tasks;
        this.baseline = baseline;
        this.baselineCorrect = baselineCorrect;
        this.method = method;
        this.progress = progress;
        this.cancellationToken = cancellationToken;
    }

    private SequenceStrategy Strategy => method.Strategy;

    private bool UsesAdapters => Strategy != SequenceStrategy.FullFineTuning;

    public SequenceResult Run()
    {
        var clock = Stopwatch.StartNew();
        int t = tasks.Count;
        var accuracy = Enumerable.Range(0, t).Select(_ => new double[t]).ToArray();
        var correct = Enumerable.Range(0, t).Select(_ => new bool[t][]).ToArray();
        var sharpness = new List<SharpnessResult>();
        var conflicts = new List<GradientConflictResult>();
        var drift = new List<InternalComparison>();
        var budgets = new List<ForgettingBudgetOutcome?>();
        var trained = new long[t];
        double trainingSeconds = 0, reusedSeconds = 0;
        var snapshots = new List<BertModel>();

        encoder = LoraInjector.MergeAndUnload(start.Encoder);
        try
        {
            encoder.to(device);
            foreach (var task in tasks)
            {
                train.Add(task.Train.Encode(start.Tokenizer, options.MaxSequenceLength));
                test.Add(task.Test.Encode(start.Tokenizer, options.MaxSequenceLength));
            }

            int first = 0;
            if (firstSteps?.Find(Strategy) is { } done)
            {
                Report($"step 1/{t}: '{tasks[0].Name}' trains as in '{done.Method}' (every method of this kind starts alike), so its state is reused");
                RestoreFirstStep(done);
                (correct[0], trained[0], trainingSeconds, reusedSeconds) = (done.Correct.ToArray(), done.TrainedParameters, done.TrainingSeconds, done.Seconds);
                for (int j = 0; j < t; j++) accuracy[0][j] = LinearProbe.Share(correct[0][j]);
                budgets.Add(null);
                using (encoder.ActivateAdapter(EvaluatedAdapter(0, 0))) snapshots.Add(LoraInjector.MergeAndUnload(encoder));
                first = 1;
            }

            for (int i = first; i < t; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (i > 0 && options.MeasureGradientConflict)
                {
                    Report($"step {i + 1}: gradient conflict of earlier tasks with '{tasks[i].Name}'");
                    conflicts.Add(ConflictBefore(i));
                }
                if (i > 0 && Strategy == SequenceStrategy.OrthogonalAdapters) FoldIntoWeights(i - 1);

                string? adapter = TrainedAdapter(i);
                if (adapter is not null && (Strategy != SequenceStrategy.SharedAdapter || i == 0))
                {
                    torch.random.manual_seed(RunSeeds.Derive(options.Seed, SeedPurpose.AdapterInitialisation, i));
                    using (encoder.ActivateAdapter(null)) LoraInjector.Inject(encoder, options.Lora, adapter);
                }

                torch.random.manual_seed(RunSeeds.Derive(options.Seed, SeedPurpose.Training, i));
                var model = new TextClassificationModel(encoder, tasks[i].ClassCount, options.Pooling, options.HeadDropout);
                model.to(device);
                models.Add(model);
                var trainingClock = Stopwatch.StartNew();
                using (encoder.ActivateAdapter(adapter))
                {
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
                        Seed = RunSeeds.Derive(options.Seed, SeedPurpose.Training, i),
                        MaxSequenceLength = options.MaxSequenceLength,
                    };
                    var trainingProgress = progress is null ? null
                        : new InlineProgress<LoraTrainingProgress>(p => progress.Report(new ForgettingProgress("sequence", $"{method.Name} {tasks[i].Name}: {p}")));
                    using var controls = Controls(i, model);
                    var loop = new FineTuningLoop(model, start.Tokenizer, settings, device, log: null, controls);
                    loop.Run(train[i], null, trainingProgress, null, cancellationToken);
                    budgets.Add(loop.BudgetOutcome);
                    if (loop.BudgetOutcome is { } outcome) Report($"'{tasks[i].Name}': forgetting budget {outcome}");
                    trainingSeconds += trainingClock.Elapsed.TotalSeconds;

                    if (options.MeasureSharpness)
                    {
                        Report($"step {i + 1}: sharpness of '{tasks[i].Name}' over the {trained[i]:N0} parameters that trained");
                        sharpness.Add(SharpnessAfter(i));
                    }
                }
                if (Strategy == SequenceStrategy.MergedAdapters && i > 0) Merge(i);

                for (int j = 0; j < t; j++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    correct[i][j] = j <= i ? HeadCorrect(j, i) : ProbeCorrect(j, i);
                    accuracy[i][j] = LinearProbe.Share(correct[i][j]);
                }
                Report($"after '{tasks[i].Name}': " + string.Join(", ", Enumerable.Range(0, t).Select(j => $"{tasks[j].Name} {accuracy[i][j]:P1}{(j > i ? " (probe)" : "")}")));

                if (i < t - 1)
                    using (encoder.ActivateAdapter(EvaluatedAdapter(i, i)))
                        snapshots.Add(LoraInjector.MergeAndUnload(encoder));
                if (i == 0) firstSteps?.Add(Strategy, method.Name, encoder, TrainedAdapter(0), models[0], correct[0], trained[0], trainingSeconds, clock.Elapsed.TotalSeconds);
            }

            for (int j = 0; j < t - 1; j++)
            {
                Report($"drift of '{tasks[j].Name}' between the end of its training and the end of the sequence");
                using var active = encoder.ActivateAdapter(EvaluatedAdapter(j, t - 1));
                var before = ComparedModel.FromEncoder(snapshots[j], start.Tokenizer, $"after {tasks[j].Name}");
                var final = ComparedModel.FromEncoder(encoder, start.Tokenizer, $"after {tasks[^1].Name}");
                drift.Add(InternalDriftMeter.Compare(before, final, tasks[j].Name, tasks[j].Test.Texts.Take(options.DriftExamples).ToList(),
                    options.MaxSequenceLength, options.BatchSize, options.HeadDriftThreshold, cancellationToken));
            }
        }
        finally
        {
            foreach (var s in snapshots) s.Dispose();
            foreach (var m in models) m.Classifier.Dispose();
            foreach (var a in earlierA.Values.SelectMany(l => l)) a.Dispose();
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
            Strategy = Strategy,
            Method = method.Name,
            Seed = options.Seed,
            Tasks = tasks.Select(x => x.Name).ToArray(),
            Accuracy = accuracy,
            Baseline = baseline,
            RowCorrect = correct,
            BaselineRowCorrect = baselineCorrect,
            AverageAccuracy = matrix.AverageAccuracy,
            AverageForgetting = matrix.AverageForgetting(ForgettingConvention.Max),
            AverageForgettingFirst = matrix.AverageForgetting(ForgettingConvention.First),
            BackwardTransfer = matrix.BackwardTransfer,
            ForwardTransfer = matrix.ForwardTransfer,
            Steps = steps,
            Sharpness = sharpness,
            GradientConflicts = conflicts,
            Drift = drift,
            Budgets = budgets,
            TrainedParameters = trained,
            TrainingSeconds = trainingSeconds,
            Seconds = reusedSeconds + clock.Elapsed.TotalSeconds,
        };
    }

    /// <summary>The adapter task <paramref name="i"/> trains; null for full fine-tuning.</summary>
    private string? TrainedAdapter(int i) => Strategy switch
    {
        SequenceStrategy.FullFineTuning => null,
        SequenceStrategy.SharedAdapter => SharedAdapter,
        _ => $"task{i}",
    };

    /// <summary>The adapter task <paramref name="j"/> is evaluated with after training through task <paramref name="i"/> (j ≤ i).</summary>
    private string? EvaluatedAdapter(int j, int i) => Strategy switch
    {
        SequenceStrategy.SharedAdapter => SharedAdapter,
        SequenceStrategy.AdapterPerTask => $"task{j}",
        SequenceStrategy.MergedAdapters => i == 0 ? "task0" : MergedAdapter,
        SequenceStrategy.OrthogonalAdapters => $"task{i}",   // the latest adapter, over the earlier ones folded into the weights
        _ => null,
    };

    /// <summary>
    /// What a task that has not been trained yet starts from: the shared adapter; with O-LoRA the latest adapter until
    /// it is folded into the weights (a fresh adapter adds 0 over them); otherwise the weights alone.
    /// </summary>
    private string? UntrainedAdapter => Strategy switch
    {
        SequenceStrategy.SharedAdapter => SharedAdapter,
        SequenceStrategy.OrthogonalAdapters => LoraInjector.FindLoraLayers(encoder).SelectMany(l => l.Layer.AdapterNames).Distinct().SingleOrDefault(),
        _ => null,
    };

    /// <summary>O-LoRA, before the next task: task <paramref name="i"/>'s adapter is folded into the weights (W += ΔW), its A kept for the penalty.</summary>
    private void FoldIntoWeights(int i)
    {
        using var noGrad = no_grad();
        string name = $"task{i}";
        foreach (var (path, layer) in LoraInjector.FindLoraLayers(encoder))
        {
            if (!layer.AdapterNames.Contains(name)) continue;
            using (var delta = layer.DeltaWeight(name)) layer.BaseLayer.weight!.add_(delta);
            if (!earlierA.TryGetValue(path, out var list)) earlierA[path] = list = [];
            list.Add(layer.LoraA(name).detach().clone().DetachFromDisposeScope());
            layer.DeleteAdapter(name);
        }
    }

    /// <summary>Merging, after task <paramref name="i"/> ≥ 1: the merged adapter is rebuilt from tasks 0..i by TIES.</summary>
    private void Merge(int i)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var layers = LoraInjector.FindLoraLayers(encoder);
        foreach (var (_, layer) in layers.Where(l => l.Layer.AdapterNames.Contains(MergedAdapter))) layer.DeleteAdapter(MergedAdapter);
        var merged = new Dictionary<string, (Tensor A, Tensor B)>(StringComparer.Ordinal);
        foreach (var (path, layer) in layers)
        {
            var deltas = Enumerable.Range(0, i + 1).Select(k => layer.DeltaWeight($"task{k}")).ToList();
            var delta = AdapterArithmetic.Ties(deltas, deltas.Select(_ => 1.0).ToList(), method.MergeDensity);
            merged[path] = AdapterArithmetic.Factor(delta, (i + 1) * options.Lora.Rank);
        }
        // TIES output is not low-rank: the SVD keeps its best rank-(i+1)·r approximation, as PEFT's ties does for LoRA.
        // alpha = rank without rsLoRA: scaling 1, since the factors carry the update.
        int rank = (i + 1) * options.Lora.Rank;
        using (encoder.ActivateAdapter(null))
            LoraInjector.Inject(encoder, options.Lora with { Rank = rank, Alpha = rank, UseRsLora = false, RankPattern = null, AlphaPattern = null }, MergedAdapter);
        foreach (var (path, layer) in layers)
        {
            var (a, b) = merged[path];
            var targetA = layer.LoraA(MergedAdapter);
            var targetB = layer.LoraB(MergedAdapter);
            targetA.zero_();
            targetB.zero_();
            targetA[..(int)a.shape[0]].copy_(a);
            targetB[.., ..(int)b.shape[1]].copy_(b);
            targetA.requires_grad = false;
            targetB.requires_grad = false;
        }
    }

    /// <summary>Rebuilds the state after the first task from another method of the same kind: the encoder (and adapter) and the first head.</summary>
    private void RestoreFirstStep(FirstStepCache.State done)
    {
        using var noGrad = no_grad();
        encoder.Dispose();
        encoder = done.Encoder.Clone();
        encoder.to(device);
        if (done.Adapter is { } factors)
        {
            torch.random.manual_seed(RunSeeds.Derive(options.Seed, SeedPurpose.AdapterInitialisation, 0));
            LoraInjector.Inject(encoder, options.Lora, TrainedAdapter(0)!);
            foreach (var f in LoraInjector.Adapters(encoder, TrainedAdapter(0)!))
            {
                f.A.copy_(factors[f.Path].A);
                f.B.copy_(factors[f.Path].B);
            }
        }
        torch.random.manual_seed(RunSeeds.Derive(options.Seed, SeedPurpose.Training, 0));
        var model = new TextClassificationModel(encoder, tasks[0].ClassCount, options.Pooling, options.HeadDropout);
        model.to(device);
        model.Classifier.weight!.copy_(done.HeadWeight);
        model.Classifier.bias!.copy_(done.HeadBias);
        model.eval();
        models.Add(model);
    }

    /// <summary>Replay, penalties and budget of step <paramref name="i"/>, over the parameters that train now; null when the method has none.</summary>
    private RetentionControls? Controls(int i, TextClassificationModel model)
    {
        var penalties = new List<ITrainingPenalty>();
        ProbeRetentionCheck? check = null;
        try
        {
            var weights = encoder.parameters().Where(p => p.requires_grad).ToList();
            // In a sequence the penalties hold what the earlier tasks left, so they start with the second task.
            if (method.RetentionPenalty is { Strength: > 0 } penalty && i > 0)
            {
                var fisher = penalty.Kind == RetentionPenaltyKind.Ewc ? Fisher(i, weights, penalty.FisherExamples) : null;
                penalties.Add(new WeightAnchor(weights, penalty.Strength, fisher));
            }
            if (Strategy == SequenceStrategy.OrthogonalAdapters && method.OrthogonalityStrength > 0 && i > 0)
                penalties.Add(new OrthogonalSubspace(LoraInjector.Adapters(encoder, $"task{i}")
                    .Where(f => earlierA.ContainsKey(f.Path))
                    .Select(f => (f.A, earlierA[f.Path].Select(a => a.clone().DetachFromDisposeScope()).ToArray())).ToList(), method.OrthogonalityStrength));
            if (method.ForgettingBudget is { } budget && i > 0)
            {
                var old = tasks.Take(i).Select(task => task with { Test = task.Test.Sample(budget.MaxCheckRows, options.Seed) }).ToList();
                check = ProbeRetentionCheck.Fit(measurements, ComparedModel.FromEncoder(encoder, start.Tokenizer, $"before {tasks[i].Name}"), old, budget.Probe, cancellationToken);
            }
            var rehearsal = method.RehearsalRatio > 0 && i > 0
                ? new RehearsalRows(Enumerable.Range(0, i).Select(j => new RehearsalTask(tasks[j].Name, train[j], models[j].Classifier)).ToList(),
                    method.RehearsalRatio, RunSeeds.Derive(options.Seed, SeedPurpose.Rehearsal, i))
                : null;
            var controls = new RetentionControls
            {
                Rehearsal = rehearsal,
                Penalties = penalties,
                Budget = check is null ? null : (method.ForgettingBudget!, check),
                Owned = check,
            };
            return controls.IsEmpty ? null : controls;
        }
        catch
        {
            foreach (var p in penalties) p.Dispose();
            check?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// EWC before step i: the earlier tasks' empirical Fisher at the current weights, each task through its own head and
    /// the adapter it is scored with (for O-LoRA the new one, over the earlier ones folded into the weights).
    /// </summary>
    private Tensor[] Fisher(int i, IReadOnlyList<Parameter> weights, int examples)
    {
        using var measuring = new MeasurementScope(encoder);
        return FisherDiagonal.Estimate(weights, examples, n =>
        {
            int j = n % i, row = n / i % train[j].Count;
            using var active = encoder.ActivateAdapter(Strategy == SequenceStrategy.OrthogonalAdapters ? TrainedAdapter(i) : EvaluatedAdapter(j, i - 1));
            return HeadLoss(j, train[j], [row]);
        }, cancellationToken);
    }

    private bool[] HeadCorrect(int j, int i)
    {
        using var active = encoder.ActivateAdapter(EvaluatedAdapter(j, i));
        return ClassifierEvaluation.Measure(models[j], test[j], start.Tokenizer.PadTokenId, device, options.BatchSize).Correct;
    }

    private bool[] ProbeCorrect(int j, int i)
    {
        var probe = FitProbe(j);
        bool[] correct;
        using (encoder.ActivateAdapter(UntrainedAdapter))
            correct = measurements.ProbeCorrect(Current("current"), tasks[j], probe, cancellationToken);
        // The next task's probe at this state is exactly what the gradient conflict before the next step reads it with.
        if (j == i + 1 && options.MeasureGradientConflict) KeepNextTaskProbe(j, probe);
        else probe.Dispose();
        return correct;
    }

    /// <summary>A linear probe for task <paramref name="j"/> on the encoder as an untrained task would start from it.</summary>
    private LinearProbe FitProbe(int j)
    {
        using var active = encoder.ActivateAdapter(UntrainedAdapter);
        return measurements.FitProbe(Current("current"), tasks[j].Train.Sample(options.MaxProbeTrainExamples, options.Seed), tasks[j].ClassCount, cancellationToken);
    }

    private ComparedModel Current(string name) => ComparedModel.FromEncoder(encoder, start.Tokenizer, name);

    private void KeepNextTaskProbe(int task, LinearProbe probe)
    {
        nextTaskProbe?.Probe.Dispose();
        nextTaskProbe = (task, probe);
    }

    /// <summary>Cross-entropy of task <paramref name="j"/>'s own head on the given rows of <paramref name="data"/>, under the adapter the caller activated.</summary>
    private Tensor HeadLoss(int j, LabeledTexts data, IReadOnlyList<int> indices)
    {
        var (batch, labels) = EncoderFeatures.Collate(data, indices, start.Tokenizer.PadTokenId, device);
        var features = EncoderFeatures.PooledWithGrad(encoder, batch, options.Pooling);
        return F.cross_entropy(models[j].Classifier.forward(features), labels);
    }

    /// <summary>Sharpness of task i's loss right after training it, over what trained (the caller keeps task i's adapter active).</summary>
    private SharpnessResult SharpnessAfter(int i)
    {
        var parameters = EncoderWeights.Trainable(encoder);
        var indices = Enumerable.Range(0, Math.Min(options.SharpnessExamples, test[i].Count)).ToArray();
        string set = Strategy == SequenceStrategy.FullFineTuning ? "trainable (every encoder weight)" : $"adapter {TrainedAdapter(i)}";
        using var scope = NewDisposeScope();
        return SharpnessMeter.Measure(encoder, () => HeadLoss(i, test[i], indices), parameters.ToList(), tasks[i].Name, $"{method.Name} after {tasks[i].Name}",
            set, indices.Length, options.PowerIterations, options.SamRho, options.Seed);
    }

    /// <summary>
    /// At the model after task i − 1: the earlier tasks' loss (each through its own head and adapter, averaged) against the
    /// loss of task i read out by a linear probe fitted on the current features (its own head is not trained yet; a fresh
    /// random head would make the gradient almost zero and its direction arbitrary).
    /// </summary>
    private GradientConflictResult ConflictBefore(int i)
    {
        using var scope = NewDisposeScope();
        var current = Current($"{method.Name} after {tasks[i - 1].Name}");
        using var probe = nextTaskProbe is { } kept && kept.Task == i ? kept.Probe : FitProbe(i);
        nextTaskProbe = null;
        var newLoss = RetentionBaseline.BatchLoss(current, tasks[i].Train, probe, options);

        Tensor OldLoss(int b)
        {
            Tensor? sum = null;
            for (int j = 0; j < i; j++)
            {
                using var active = encoder.ActivateAdapter(EvaluatedAdapter(j, i - 1));
                var loss = HeadLoss(j, train[j], RetentionBaseline.GradientBatch(train[j].Count, b, options.GradientBatchSize));
                sum = sum is null ? loss : sum + loss;
            }
            return sum! / i;
        }
        Tensor NewLoss(int b)
        {
            using var active = encoder.ActivateAdapter(UntrainedAdapter);
            return newLoss(b);
        }

        var adapters = Strategy == SequenceStrategy.SharedAdapter ? EncoderWeights.Adapters(encoder, SharedAdapter) : [];
        string note = Strategy switch
        {
            SequenceStrategy.FullFineTuning => "full fine-tuning has no adapters",
            SequenceStrategy.SharedAdapter => "",
            _ => "the new task trains a fresh adapter that the earlier tasks' losses do not depend on",
        };
        var old = string.Join("+", tasks.Take(i).Select(x => x.Name));
        return measurements.MeasureConflict(old, tasks[i].Name, current, OldLoss, NewLoss, adapters, note, cancellationToken);
    }

    private void Report(string message) => ForgettingMeasurements.Report(progress, "sequence", $"{method.Name}: {message}");
}
