using MLNet.Lora.Adapters;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Benchmarks;

/// <summary>Section 11: what the trainer's options that limit forgetting add to a training step.</summary>
internal static partial class Sections
{
    private const int OldRows = 64;
    private const int FisherExamples = 32;

    private static void RetentionCost(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("11. Forgetting remedies: training step, default model, batch 32x128, LoRA r8 (query, value), each option alone");
        var w = ctx.Workload;
        var data = new LabeledTexts(w.RandomItems(), Enumerable.Range(0, Workload.Batch).Select(i => i % 2).ToList());
        var old = new LabeledTexts(w.RandomItems(OldRows, seed: 8), Enumerable.Range(0, OldRows).Select(i => i % 3).ToList());
        int[] rows = Enumerable.Range(0, Workload.Batch).ToArray();
        int replayed = (int)Math.Round(0.3 * Workload.Batch);   // as RehearsalRows.CountFor draws
        var wider = new LabeledTexts(w.RandomItems(Workload.Batch + replayed, seed: 9), Enumerable.Range(0, Workload.Batch + replayed).Select(i => i % 2).ToList());
        int[] widerRows = Enumerable.Range(0, wider.Count).ToArray();

        static List<Parameter> EncoderWeights(TextClassificationModel m) => m.Encoder.parameters().Where(p => p.requires_grad).ToList();
        using var lora = new StepRunner(w, FineTuningMode.Lora);
        using var rehearsal = new StepRunner(w, FineTuningMode.Lora, controls: m =>
        {
            var head = TextClassificationModel.NewHead(m.Encoder.Config.HiddenSize, 3);
            return new RetentionControls { Rehearsal = new RehearsalRows([new RehearsalTask("old", old, head)], 0.3, seed: 1), OwnsRehearsalHeads = true };
        });
        using var l2sp = new StepRunner(w, FineTuningMode.Lora, controls: m => new RetentionControls { Penalties = [new WeightAnchor(EncoderWeights(m), 1)] });
        using var ewc = new StepRunner(w, FineTuningMode.Lora, controls: m =>
        {
            var weights = EncoderWeights(m);
            return new RetentionControls { Penalties = [new WeightAnchor(weights, 1, weights.Select(p => ones_like(p).DetachFromDisposeScope()).ToArray())] };
        });
        using var orthogonal = new StepRunner(w, FineTuningMode.Lora, controls: m =>
        {
            var generator = new Generator(5);
            var layers = LoraInjector.Adapters(m.Encoder).Select(f => (f.A, new[] { randn(f.A.shape, generator: generator).DetachFromDisposeScope() })).ToList();
            return new RetentionControls { Penalties = [new OrthogonalSubspace(layers, 0.5)] };
        });
        using var full = new StepRunner(w, FineTuningMode.Full);
        using var fullL2sp = new StepRunner(w, FineTuningMode.Full, controls: m => new RetentionControls { Penalties = [new WeightAnchor(EncoderWeights(m), 1)] });
        Report.Line($"rehearsal: 30 % of the batch ({replayed} rows) from a 3-class task through its own head, beside a plain step of as many rows; " +
                    $"EWC: the L2-SP penalty weighted by a Fisher diagonal; O-LoRA: one earlier adapter per layer; Fisher: {FisherExamples} per-example passes");

        var fisherWeights = EncoderWeights(ewc.Model);
        var contenders = new[]
        {
            Contender.Timed("LoRA", () => lora.Step(data, rows)),
            Contender.Timed("LoRA + rehearsal 30%", () => rehearsal.Step(data, rows)),
            Contender.Timed("LoRA, as many rows", () => lora.Step(wider, widerRows)),
            Contender.Timed("LoRA + L2-SP", () => l2sp.Step(data, rows)),
            Contender.Timed("LoRA + EWC", () => ewc.Step(data, rows)),
            Contender.Timed("O-LoRA", () => orthogonal.Step(data, rows)),
            Contender.Timed("full", () => full.Step(data, rows)),
            Contender.Timed("full + L2-SP", () => fullL2sp.Step(data, rows)),
            Contender.Timed("Fisher estimate", () =>
            {
                var fisher = FisherDiagonal.Estimate(fisherWeights, FisherExamples, n =>
                {
                    var item = data.Items[n % data.Count];
                    var batch = TokenBatch.Collate([item], w.Encoder.Tokenizer.PadTokenId);
                    return F.cross_entropy(ewc.Model.forward(batch), tensor(new long[] { data.Labels[n % data.Count] }));
                });
                foreach (var t in fisher) t.Dispose();
            }),
        };
        var alt = new Alternation(contenders, ctx.Options.Rounds, log: ctx.Log);
        r.Figure("LoRA step (this section's rounds)", alt.Seconds("LoRA"), "s");
        r.Figure("rehearsal 30% / LoRA step", alt.Ratio("LoRA + rehearsal 30%", "LoRA"), "x");
        r.Figure($"LoRA step of {Workload.Batch + replayed} rows / of {Workload.Batch}", alt.Ratio("LoRA, as many rows", "LoRA"), "x");
        r.Figure($"rehearsal 30% / LoRA step of as many rows", alt.Ratio("LoRA + rehearsal 30%", "LoRA, as many rows"), "x", note: "replay's own cost: the old heads and the split loss");
        r.Figure("L2-SP / LoRA step", alt.Ratio("LoRA + L2-SP", "LoRA"), "x");
        r.Figure("EWC / LoRA step", alt.Ratio("LoRA + EWC", "LoRA"), "x");
        r.Figure("O-LoRA / LoRA step", alt.Ratio("O-LoRA", "LoRA"), "x");
        r.Figure("full + L2-SP / full step", alt.Ratio("full + L2-SP", "full"), "x", note: "the anchor holds a second copy of every weight");
        r.Figure($"Fisher estimate ({FisherExamples} examples) / LoRA step (32 rows)", alt.Ratio("Fisher estimate", "LoRA"), "x",
            note: "once per fit, before training: EWC's one-off cost");
    }
}
