using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Forgetting;
using MLNet.Lora.MultiAdapter;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Integration;

/// <summary>
/// The trainer's options that limit forgetting (<see cref="LoraTextClassificationTrainer.Options.RetentionTasks"/>,
/// <c>Rehearsal</c>, <c>RetentionPenalty</c>, <c>OrthogonalTo</c>, <c>ForgettingBudget</c>): their checks before
/// training, and the <see cref="RetentionControls"/> a fit runs with.
/// </summary>
internal static class RetentionOptions
{
    private const string Options = nameof(LoraTextClassificationTrainer.Options);

    /// <summary>Refuses settings that cannot work, naming the option and what to change. Data-dependent checks run in <see cref="Build"/>.</summary>
    public static void Validate(LoraTextClassificationTrainer.Options o)
    {
        static void Check(bool ok, string name, object? value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{Options}.{name} {rule}");
        }
        bool hasRetention = o.RetentionTasks is { Count: > 0 };
        if (o.RetentionTasks is { } tasks)
        {
            Check(tasks.Count > 0 && tasks.All(t => t is not null), nameof(o.RetentionTasks), tasks.Count, "must list at least one task (or be null).");
            var duplicate = tasks.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            Check(duplicate is null, nameof(o.RetentionTasks), duplicate?.Key, $"names '{duplicate?.Key}' twice: give every retention task its own name.");
        }
        if (o.Rehearsal is { } rehearsal)
        {
            Check(rehearsal.Tasks is { Count: > 0 } && rehearsal.Tasks.All(t => t is not null), "Rehearsal.Tasks", rehearsal.Tasks?.Count, "must list at least one earlier task.");
            var twice = rehearsal.Tasks!.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            Check(twice is null, "Rehearsal.Tasks", twice?.Key, $"names '{twice?.Key}' twice: give every replayed task its own name (each gets its own head).");
            Check(o.Mode != FineTuningMode.HeadOnly, "Rehearsal", o.Mode,
                $"has nothing to keep in {nameof(FineTuningMode)}.{nameof(FineTuningMode.HeadOnly)}: the encoder does not train, so replay would only train heads that are dropped. Use Mode = Lora or Full.");
            Training.Rehearsal.ValidateRatio(rehearsal.Ratio, $"{Options}.Rehearsal.Ratio");
        }
        if (o.RetentionPenalty is { } penalty)
        {
            penalty.Validate($"{Options}.RetentionPenalty");
            Check(o.Mode != FineTuningMode.HeadOnly, "RetentionPenalty", penalty.Kind,
                $"has nothing to hold in {nameof(FineTuningMode)}.{nameof(FineTuningMode.HeadOnly)}: the encoder does not train. Use Mode = Lora or Full, or drop the penalty.");
            Check(penalty.Kind != RetentionPenaltyKind.Ewc || hasRetention, "RetentionPenalty", penalty.Kind,
                $"(EWC) needs {nameof(o.RetentionTasks)}: its Fisher information is estimated on them. Set {Options}.{nameof(o.RetentionTasks)}, or use L2-SP, which needs no data.");
        }
        if (o.OrthogonalTo is { } earlier)
        {
            Check(o.Mode == FineTuningMode.Lora, nameof(o.OrthogonalTo), o.Mode, $"needs {nameof(o.Mode)} = {nameof(FineTuningMode.Lora)}: it constrains the new adapter (was {o.Mode}).");
            Check(earlier.Count > 0 && earlier.All(p => !string.IsNullOrWhiteSpace(p)), nameof(o.OrthogonalTo), earlier.Count,
                "must list at least one adapter (a SaveWithAdapters zip or a PEFT folder), each a non-blank path.");
        }
        Check(double.IsFinite(o.OrthogonalityStrength) && o.OrthogonalityStrength >= 0, nameof(o.OrthogonalityStrength), o.OrthogonalityStrength,
            $"must be a finite number ≥ 0 (was {o.OrthogonalityStrength}).");
        if (o.ForgettingBudget is { } budget)
        {
            Check(hasRetention, nameof(o.ForgettingBudget), budget.MaxDrop,
                $"needs {nameof(o.RetentionTasks)}: the budget is the accuracy they may lose. Set {Options}.{nameof(o.RetentionTasks)}.");
            budget.Validate($"{Options}.ForgettingBudget");
        }
    }

    /// <summary>
    /// Reads the retention and rehearsal data, fits the probes, estimates the Fisher, reads the earlier adapters, and
    /// returns what the fit runs with (null when no option is set). <paramref name="model"/> is as training starts, with
    /// its trainable parameters chosen.
    /// </summary>
    public static RetentionControls? Build(LoraTextClassificationTrainer.Options o, TextClassificationModel model, BertTextTokenizer tokenizer,
        SharedBaseEncoder baseEncoder, Device device, int seed, IChannel channel)
    {
        bool any = o.Rehearsal is not null || o.RetentionPenalty is { Strength: > 0 } || o.OrthogonalTo is not null || o.ForgettingBudget is not null;
        if (!any) return null;
        var measurements = new ForgettingMeasurements(new MLContext(seed), new ForgettingEvaluator.Options
        {
            Seed = seed, MaxSequenceLength = o.MaxSequenceLength, Pooling = o.Pooling, BatchSize = o.InferenceBatchSize,
        }.Validate());
        var start = ComparedModel.FromModel(model, tokenizer, "start");
        var retention = o.RetentionTasks?.Select(t => Read(nameof(o.RetentionTasks), t, measurements.ReadRetention)).ToList() ?? [];
        var penalties = new List<ITrainingPenalty>();
        ProbeRetentionCheck? check = null;
        RehearsalRows? rehearsal = null;
        try
        {
            rehearsal = o.Rehearsal is { } r ? Rehearsal(r, model, tokenizer, o.MaxSequenceLength, device, seed, channel) : null;
            var encoderWeights = model.Encoder.parameters().Where(p => p.requires_grad).ToList();
            if (o.RetentionPenalty is { Strength: > 0 } penalty)
            {
                Tensor[]? fisher = penalty.Kind == RetentionPenaltyKind.Ewc
                    ? Fisher(measurements, start, retention, encoderWeights, penalty.FisherExamples, device, o.CancellationToken)
                    : null;
                penalties.Add(new WeightAnchor(encoderWeights, penalty.Strength, fisher));
                channel.Info(MessageSensitivity.None, $"Retention penalty {penalty.Kind}, λ = {penalty.Strength:G3}, over {encoderWeights.Sum(p => p.numel()):N0} weights" +
                             (fisher is null ? "." : $"; Fisher from {penalty.FisherExamples} examples of {string.Join(", ", retention.Select(t => t.Name))}."));
            }
            if (o.OrthogonalTo is { } earlier && o.OrthogonalityStrength > 0)
            {
                penalties.Add(new OrthogonalSubspace(EarlierSubspaces(earlier, model, baseEncoder), o.OrthogonalityStrength));
                channel.Info(MessageSensitivity.None, $"O-LoRA: the adapter's A is held orthogonal to {earlier.Count} earlier adapter(s), λ = {o.OrthogonalityStrength:G3}.");
            }
            if (o.ForgettingBudget is { } budget)
                check = ProbeRetentionCheck.Fit(measurements, start, retention.Select(t => t with { Test = t.Test.Sample(budget.MaxCheckRows, seed) }).ToList(),
                    budget.Probe, o.CancellationToken);
            return new RetentionControls
            {
                Rehearsal = rehearsal,
                Penalties = penalties,
                Budget = o.ForgettingBudget is { } b ? (b, check!) : null,
                Owned = check,
                OwnsRehearsalHeads = true,
            };
        }
        catch
        {
            foreach (var p in penalties) p.Dispose();
            check?.Dispose();
            if (rehearsal is not null) foreach (var task in rehearsal.Tasks) task.Head.Dispose();
            throw;
        }
    }

    /// <summary>Reads a task of option <paramref name="option"/>, naming the option in any error about its data.</summary>
    private static TaskData Read(string option, ForgettingTask task, Func<ForgettingTask, TaskData> read)
    {
        try
        {
            return read(task);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{Options}.{option}: {e.Message}", option, e);
        }
    }

    private static RehearsalRows Rehearsal(Rehearsal rehearsal, TextClassificationModel model, BertTextTokenizer tokenizer, int maxLength, Device device, int seed, IChannel channel)
    {
        var tasks = new List<RehearsalTask>();
        foreach (var task in rehearsal.Tasks)
        {
            var data = Read("Rehearsal", task, TaskData.ReadTraining);
            var head = TextClassificationModel.NewHead(model.Encoder.Config.HiddenSize, data.ClassCount);
            head.to(device);
            tasks.Add(new RehearsalTask(task.Name, data.Train.Encode(tokenizer, maxLength), head));
        }
        channel.Info(MessageSensitivity.None, $"Rehearsal: {rehearsal.Ratio:G3} old rows per new row from {string.Join(", ", tasks.Select(t => $"{t.Name} ({t.Rows.Count} rows)"))}.");
        return new RehearsalRows(tasks, rehearsal.Ratio, RunSeeds.Derive(seed, SeedPurpose.Rehearsal));
    }

    /// <summary>EWC's Fisher: per-example gradients of the retention tasks' probe loss at the start, the tasks taking turns.</summary>
    internal static Tensor[] Fisher(ForgettingMeasurements measurements, ComparedModel start, IReadOnlyList<TaskData> tasks, IReadOnlyList<Parameter> weights,
        int examples, Device device, CancellationToken cancellationToken)
    {
        var probes = new List<LinearProbe>();
        try
        {
            var encoded = new List<LabeledTexts>();
            foreach (var task in tasks)
            {
                probes.Add(measurements.FitProbe(start, task.Train, task.ClassCount, cancellationToken));
                encoded.Add(task.Train.Encode(start.Tokenizer, measurements.Options.MaxSequenceLength));
            }
            var pooling = measurements.Options.Pooling;
            using var measuring = new MeasurementScope(start.Encoder);   // eval mode: the Fisher of the model as it predicts
            return FisherDiagonal.Estimate(weights, examples, n =>
            {
                int t = n % tasks.Count, row = n / tasks.Count % encoded[t].Count;
                var (batch, label) = EncoderFeatures.Collate(encoded[t], [row], start.Tokenizer.PadTokenId, device);
                return F.cross_entropy(probes[t].Logits(EncoderFeatures.PooledWithGrad(start.Encoder, batch, pooling)), label);
            }, cancellationToken);
        }
        finally
        {
            foreach (var p in probes) p.Dispose();
        }
    }

    /// <summary>Per adapted layer of <paramref name="model"/>: its A and the earlier adapters' A's there, refusing another base or layout.</summary>
    private static List<(Parameter New, Tensor[] Old)> EarlierSubspaces(IReadOnlyList<string> paths, TextClassificationModel model, SharedBaseEncoder baseEncoder)
    {
        var current = LoraInjector.Adapters(model.Encoder);
        var old = current.ToDictionary(f => f.Path, _ => new List<Tensor>(), StringComparer.Ordinal);
        // One view of the shared base for every file: the readers check each file's base against it.
        using var view = new PretrainedEncoder(baseEncoder.CreateEncoder(frozen: true), baseEncoder.Tokenizer, baseEncoder.Identity);
        var ml = new MLContext();
        try
        {
            foreach (var path in paths)
                foreach (var (layer, a) in EarlierFactorsA(ml, path, view))
                {
                    if (!old.TryGetValue(layer, out var list))
                        throw new ArgumentException($"{Options}.OrthogonalTo: '{path}' adapts '{layer}', which the new adapter does not " +
                                                    $"(TargetModules = {current.Select(f => LoraModulePaths.KindOf(f.Path)).Aggregate((x, y) => x | y)}). O-LoRA needs the earlier adapters' target modules to be among the new one's.", "OrthogonalTo");
                    var target = current.First(f => f.Path == layer).A;
                    if (a.shape[1] != target.shape[1])
                        throw new ArgumentException($"{Options}.OrthogonalTo: '{path}' has A of shape [{string.Join(", ", a.shape)}] on '{layer}', whose input has {target.shape[1]} features.", "OrthogonalTo");
                    list.Add(a.to(target.dtype, target.device).DetachFromDisposeScope());
                    a.Dispose();
                }
            return current.Where(f => old[f.Path].Count > 0).Select(f => (f.A, old[f.Path].ToArray())).ToList();
        }
        catch
        {
            foreach (var t in old.Values.SelectMany(l => l)) t.Dispose();
            throw;
        }
    }

    /// <summary>An earlier adapter's A by layer path, from a PEFT folder or a SaveWithAdapters zip over the same base (CPU copies, the caller's).</summary>
    private static List<(string Layer, Tensor A)> EarlierFactorsA(MLContext ml, string path, PretrainedEncoder baseEncoder)
    {
        string marker = $".{AdapterKeys.FactorA}.";
        try
        {
            var factors = AdapterWeights.ReadFactors(ml, path, baseEncoder);
            foreach (var b in factors.Where(f => !f.Key.Contains(marker, StringComparison.Ordinal))) b.Value.Dispose();
            return factors.Where(f => f.Key.Contains(marker, StringComparison.Ordinal))
                .Select(f => (f.Key[..f.Key.IndexOf(marker, StringComparison.Ordinal)], f.Value)).ToList();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or NotSupportedException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{Options}.OrthogonalTo: {e.Message}", "OrthogonalTo", e);
        }
    }
}
