using System.Diagnostics;
using MLNet.Lora.Adapters;
using MLNet.Lora.Tokenization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Training;

/// <summary>
/// Trains a <see cref="TextClassificationModel"/>: AdamW over the trainable parameters only, linear warm-up then
/// linear decay, gradient clipping, length-grouped batches, validation each epoch with early stopping (the best
/// epoch's weights are restored), progress, cancellation, and an epoch-end hook.
/// </summary>
internal sealed class FineTuningLoop
{
    private readonly TextClassificationModel model;
    private readonly FineTuningSettings settings;
    private readonly BertTextTokenizer tokenizer;
    private readonly Device device;
    private readonly Action<string>? log;
    private readonly RetentionControls? controls;

    /// <summary>
    /// Prepares to train <paramref name="model"/>; call <see cref="PrepareParameters"/> first to choose what trains.
    /// <paramref name="controls"/> limit forgetting (replay, penalties, a budget); the caller owns them.
    /// </summary>
    public FineTuningLoop(TextClassificationModel model, BertTextTokenizer tokenizer, FineTuningSettings settings, Device device, Action<string>? log = null,
        RetentionControls? controls = null)
    {
        this.model = model;
        this.settings = settings;
        this.tokenizer = tokenizer;
        this.device = device;
        this.log = log;
        this.controls = controls is { IsEmpty: false } ? controls : null;
    }

    /// <summary>What the forgetting budget did in the last <see cref="Run"/>; null without a budget.</summary>
    public ForgettingBudgetOutcome? BudgetOutcome { get; private set; }

    /// <summary>
    /// Sets <c>requires_grad</c> by mode: adapters and head (<see cref="FineTuningMode.Lora"/>), everything
    /// (<see cref="FineTuningMode.Full"/>) or the head alone (<see cref="FineTuningMode.HeadOnly"/>).
    /// Frozen weights stay out of autograd entirely.
    /// </summary>
    public static void PrepareParameters(TextClassificationModel model, FineTuningMode mode, string adapterName = LoraInjector.DefaultAdapterName)
    {
        switch (mode)
        {
            case FineTuningMode.Lora:
                LoraInjector.MarkOnlyAdaptersTrainable(model.Encoder, adapterName);
                break;
            case FineTuningMode.Full:
                foreach (var p in model.Encoder.parameters()) p.requires_grad = true;
                break;
            case FineTuningMode.HeadOnly:
                foreach (var p in model.Encoder.parameters()) p.requires_grad = false;
                break;
        }
        foreach (var p in model.Classifier.parameters()) p.requires_grad = true;
    }

    /// <summary>Runs the fine-tune and returns each epoch's figures.</summary>
    public IReadOnlyList<EpochSummary> Run(LabeledTexts train, LabeledTexts? validation = null,
        IProgress<LoraTrainingProgress>? progress = null, Action<EpochEndedContext>? onEpochEnded = null,
        CancellationToken cancellationToken = default)
    {
        if (train.Count == 0) throw new ArgumentException("The training set is empty.", nameof(train));
        torch.random.manual_seed(settings.Seed);
        var random = new Random(settings.Seed);
        var trainable = TrainableParameters();
        if (trainable.Count == 0) throw new InvalidOperationException("No parameter is trainable; call PrepareParameters first.");

        using var optimizer = CreateOptimizer(trainable);
        var baseRates = optimizer.ParamGroups.Select(g => g.LearningRate).ToArray();
        int stepsPerEpoch = (train.Count + settings.BatchSize - 1) / settings.BatchSize;
        int totalSteps = stepsPerEpoch * settings.MaxEpochs;
        int warmupSteps = (int)Math.Ceiling(settings.WarmupRatio * totalSteps);
        var lengths = train.Items.Select(i => i.Length).ToArray();
        var trainableParameters = trainable.Select(p => p.parameter).ToList();

        var history = new List<EpochSummary>();
        Dictionary<string, Tensor>? best = null;
        double bestAccuracy = double.NegativeInfinity;
        int step = 0, epochsWithoutImprovement = 0;
        var clock = Stopwatch.StartNew();
        var budget = controls?.Budget is { } b ? new BudgetGuard(b.Budget, b.Check, model, trainable, validation is not null) : null;
        try
        {
            for (int epoch = 1; epoch <= settings.MaxEpochs && budget?.Exceeded != true; epoch++)
            {
                model.train();
                if (settings.Mode == FineTuningMode.HeadOnly) model.Encoder.eval();   // a probe sees fixed features
                double epochLoss = 0, windowLoss = 0;
                int windowExamples = 0, windowSteps = 0;
                var windowClock = Stopwatch.StartNew();
                var epochClock = Stopwatch.StartNew();
                foreach (var indices in LengthGroupedBatches.Create(lengths, settings.BatchSize, random, settings.GroupByLength))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    double multiplier = LearningRateMultiplier(step, warmupSteps, totalSteps);
                    int g = 0;
                    foreach (var group in optimizer.ParamGroups) group.LearningRate = baseRates[g++] * multiplier;

                    double loss = TrainStep(train, indices, optimizer, trainableParameters);
                    if (!double.IsFinite(loss))
                        throw new TrainingDivergedException(epoch, step + 1, loss,
                            $"Training diverged at epoch {epoch}, step {step + 1}: the loss is {loss}. Lower the learning rate " +
                            $"(now {settings.LearningRate:G3}) or keep gradient clipping on (MaxGradientNorm).");
                    step++;
                    epochLoss += loss * indices.Length;
                    windowLoss += loss;
                    windowSteps++;
                    windowExamples += indices.Length;

                    if (budget is not null && budget.DueAfter(step) && !budget.Check(epoch, step, validationAccuracy: null, log))
                        break;

                    if (step % settings.LogEveryNSteps == 0)
                    {
                        var report = Report(epoch, step, totalSteps, windowLoss / windowSteps, baseRates[0] * multiplier,
                            windowExamples / windowClock.Elapsed.TotalSeconds, clock.Elapsed);
                        progress?.Report(report);
                        log?.Invoke(report.ToString());
                        windowLoss = 0; windowSteps = 0; windowExamples = 0;
                        windowClock.Restart();
                    }
                }

                var trainingTime = epochClock.Elapsed;
                model.eval();
                var (accuracy, validationLoss) = validation is null ? ((double?)null, (double?)null) : Evaluate(validation);
                var summary = new EpochSummary(epoch, epochLoss / train.Count, accuracy, validationLoss, clock.Elapsed) { TrainingTime = trainingTime };
                history.Add(summary);
                var epochReport = Report(epoch, step, totalSteps, summary.TrainingLoss, baseRates[0] * LearningRateMultiplier(step, warmupSteps, totalSteps),
                    train.Count * epoch / clock.Elapsed.TotalSeconds, clock.Elapsed) with { ValidationAccuracy = accuracy, ValidationLoss = validationLoss, IsEpochEnd = true };
                progress?.Report(epochReport);
                log?.Invoke(epochReport.ToString());

                bool stop = false;
                if (onEpochEnded is not null)
                {
                    var context = new EpochEndedContext(epoch, settings.MaxEpochs, summary.TrainingLoss, accuracy, model, tokenizer, settings.MaxSequenceLength);
                    onEpochEnded(context);
                    stop = context.StopTraining;
                }
                if (budget is not null)
                {
                    // The budget keeps its own checkpoint: the best validation accuracy (or the latest) within budget.
                    if (budget.Exceeded || !budget.Check(epoch, step, accuracy, log)) break;
                }
                else if (accuracy is { } acc && acc > bestAccuracy)
                {
                    DisposeAll(best);
                    best = Snapshot(trainable);
                }

                if (accuracy is { } validated)
                {
                    if (validated > bestAccuracy)
                    {
                        bestAccuracy = validated;
                        epochsWithoutImprovement = 0;
                    }
                    else if (settings.EarlyStoppingPatience is { } patience && ++epochsWithoutImprovement >= patience)
                    {
                        log?.Invoke($"Early stopping after epoch {epoch}: validation accuracy has not improved for {patience} epoch(s); best {bestAccuracy:F4}.");
                        stop = true;
                    }
                }
                if (stop) break;
            }
            if (best is not null) Restore(trainable, best);
            if (budget is not null)
            {
                budget.RestoreKept(step);
                BudgetOutcome = budget.Outcome;
                log?.Invoke($"Forgetting budget: {BudgetOutcome}.");
            }
        }
        finally
        {
            DisposeAll(best);
            budget?.Dispose();
            model.eval();
        }
        return history;
    }

    /// <summary>Accuracy and mean cross-entropy on <paramref name="data"/>, in eval mode without autograd.</summary>
    public (double Accuracy, double Loss) Evaluate(LabeledTexts data, int? batchSize = null)
    {
        var result = ClassifierEvaluation.Measure(model, data, tokenizer.PadTokenId, device, batchSize ?? settings.BatchSize * 2);
        return (result.Accuracy, result.Loss);
    }

    /// <summary>One optimizer step on rows <paramref name="indices"/> of <paramref name="data"/>, with replay and penalties as set (for benchmarks too).</summary>
    internal double TrainStep(LabeledTexts data, int[] indices, OptimizerHelper optimizer, List<Parameter> trainable)
    {
        using var scope = NewDisposeScope();
        if (controls?.Rehearsal is { } rehearsal) return RehearsalStep(data, indices, rehearsal, optimizer, trainable);
        var (batch, labels) = Collate(data, indices);
        return TrainStep(batch, labels, optimizer, trainable);
    }

    /// <summary>One optimizer step on a collated batch: forward, cross-entropy, backward, clipping, AdamW. Returns the loss.</summary>
    internal double TrainStep(TokenBatch batch, Tensor labels, OptimizerHelper optimizer, List<Parameter> trainable)
    {
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        return Step(F.cross_entropy(model.forward(batch), labels), optimizer, trainable);
    }

    /// <summary>
    /// A step on the new rows with replayed old rows in the same forward pass: each row's cross-entropy through its own
    /// task's head, averaged over all rows. Returns that mean, penalties included (so the reported training loss of a
    /// fit with replay or a penalty is not the new task's loss alone).
    /// </summary>
    private double RehearsalStep(LabeledTexts data, int[] indices, RehearsalRows rehearsal, OptimizerHelper optimizer, List<Parameter> trainable)
    {
        var old = rehearsal.Draw(rehearsal.CountFor(indices.Length));
        var items = indices.Select(i => data.Items[i]).Concat(old.Select(o => rehearsal.Tasks[o.Task].Rows.Items[o.Row])).ToArray();
        var batch = TokenBatch.Collate(items, tokenizer.PadTokenId, device, settings.PadToLength);
        optimizer.zero_grad();
        Tensor features = model.Features(batch);                                    // [new + old, hidden]
        Tensor sum = F.cross_entropy(model.Logits(features[..indices.Length], model.Classifier),
            tensor(indices.Select(i => (long)data.Labels[i]).ToArray(), device: device), reduction: nn.Reduction.Sum);
        foreach (var group in Enumerable.Range(0, old.Length).GroupBy(k => old[k].Task))
        {
            var task = rehearsal.Tasks[group.Key];
            var rows = tensor(group.Select(k => (long)(indices.Length + k)).ToArray(), device: device);
            var labels = tensor(group.Select(k => (long)task.Rows.Labels[old[k].Row]).ToArray(), device: device);
            sum = sum.add(F.cross_entropy(model.Logits(features.index_select(0, rows), task.Head), labels, reduction: nn.Reduction.Sum));
        }
        return Step(sum.div(items.Length), optimizer, trainable);
    }

    /// <summary>Adds the penalties to <paramref name="loss"/>, backpropagates, clips and steps. Returns the total loss.</summary>
    private double Step(Tensor loss, OptimizerHelper optimizer, List<Parameter> trainable)
    {
        if (controls is not null)
            foreach (var penalty in controls.Penalties) loss = loss.add(penalty.Loss());
        loss.backward();
        if (settings.MaxGradientNorm > 0) nn.utils.clip_grad_norm_(trainable, settings.MaxGradientNorm);
        optimizer.step();
        return loss.item<float>();
    }

    /// <summary>The optimizer <see cref="Run"/> uses over the parameters that are trainable now, and those parameters (for benchmarks and tests).</summary>
    internal (OptimizerHelper Optimizer, List<Parameter> Trainable) CreateOptimizer()
    {
        var trainable = TrainableParameters();
        if (trainable.Count == 0) throw new InvalidOperationException("No parameter is trainable; call PrepareParameters first.");
        return (CreateOptimizer(trainable), trainable.Select(p => p.parameter).ToList());
    }

    /// <summary>The model's parameters that require grad, and the replayed tasks' heads (which train along).</summary>
    private List<(string name, Parameter parameter)> TrainableParameters()
    {
        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        if (controls?.Rehearsal is { } rehearsal)
            for (int t = 0; t < rehearsal.Tasks.Count; t++)
                foreach (var (name, parameter) in rehearsal.Tasks[t].Head.named_parameters())
                {
                    parameter.requires_grad = true;
                    trainable.Add(($"rehearsal.{t}.{name}", parameter));
                }
        return trainable;
    }

    private (TokenBatch Batch, Tensor Labels) Collate(LabeledTexts data, int[] indices)
    {
        var items = new EncodedText[indices.Length];
        var labels = new long[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            items[i] = data.Items[indices[i]];
            labels[i] = data.Labels[indices[i]];
        }
        return (TokenBatch.Collate(items, tokenizer.PadTokenId, device, settings.PadToLength), tensor(labels, device: device));
    }

    private OptimizerHelper CreateOptimizer(List<(string name, Parameter parameter)> trainable)
    {
        // Groups by structure, not by name (as nanoGPT and PEFT): no decay on vectors (biases, LayerNorm), as BERT;
        // LoRA+ gives every adapter's B a larger learning rate.
        var loraB = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (string adapter in LoraInjector.FindLoraLayers(model).SelectMany(l => l.Layer.AdapterNames).Distinct())
            foreach (var factors in LoraInjector.Adapters(model, adapter)) loraB.Add(factors.B);
        bool IsLoraB(Parameter p) => loraB.Contains(p);
        static bool NoDecay(Parameter p) => p.dim() < 2;
        double lr = settings.LearningRate;
        var groups = new List<AdamW.ParamGroup>();
        void Add(IEnumerable<Parameter> members, double rate, double decay)
        {
            var list = members.ToList();
            if (list.Count > 0) groups.Add(new AdamW.ParamGroup(list, lr: rate, weight_decay: decay));
        }
        var parameters = trainable.Select(t => t.parameter).ToList();
        Add(parameters.Where(p => !NoDecay(p) && !IsLoraB(p)), lr, settings.WeightDecay);
        Add(parameters.Where(NoDecay), lr, 0);
        Add(parameters.Where(IsLoraB), lr * settings.LoraPlusLearningRateRatio, settings.WeightDecay);
        return optim.AdamW(groups, lr: lr);
    }

    /// <summary>Linear warm-up to 1 over <paramref name="warmup"/> steps, then linear decay to 0 at <paramref name="total"/>.</summary>
    internal static double LearningRateMultiplier(int step, int warmup, int total)
    {
        if (step < warmup) return (step + 1.0) / warmup;
        return Math.Max(0.0, (total - step) / (double)Math.Max(1, total - warmup));
    }

    private LoraTrainingProgress Report(int epoch, int step, int totalSteps, double loss, double lr, double examplesPerSecond, TimeSpan elapsed) =>
        new(epoch, settings.MaxEpochs, step, totalSteps, loss, lr, examplesPerSecond,
            TimeSpan.FromSeconds(elapsed.TotalSeconds / Math.Max(1, step) * (totalSteps - step)));

    /// <summary>Copies of <paramref name="parameters"/> by name (the caller disposes them with <see cref="DisposeAll"/>).</summary>
    internal static Dictionary<string, Tensor> Snapshot(List<(string name, Parameter parameter)> parameters)
    {
        using var _ = no_grad();
        return parameters.ToDictionary(p => p.name, p => p.parameter.detach().clone().DetachFromDisposeScope());
    }

    internal static void Restore(List<(string name, Parameter parameter)> parameters, Dictionary<string, Tensor> snapshot)
    {
        using var _ = no_grad();
        foreach (var (name, parameter) in parameters) parameter.copy_(snapshot[name]);
    }

    internal static void DisposeAll(Dictionary<string, Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors.Values) t.Dispose();
        tensors.Clear();
    }
}

/// <summary>One epoch's figures.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="TrainingLoss">Mean training loss over the epoch.</param>
/// <param name="ValidationAccuracy">Validation accuracy, when a validation set was given.</param>
/// <param name="ValidationLoss">Validation loss, when a validation set was given.</param>
/// <param name="Elapsed">Wall time since training began.</param>
public sealed record EpochSummary(int Epoch, double TrainingLoss, double? ValidationAccuracy, double? ValidationLoss, TimeSpan Elapsed)
{
    /// <summary>Wall time of this epoch's training steps alone (validation and callbacks excluded).</summary>
    public TimeSpan TrainingTime { get; init; }
}
