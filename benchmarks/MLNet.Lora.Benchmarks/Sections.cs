using System.Diagnostics;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>Sections 0, 1 and 7: the GEMM peak, the forward pass and the training step of the default model.</summary>
internal static partial class Sections
{
    public static void Run(int section, BenchmarkContext ctx)
    {
        var watch = Stopwatch.StartNew();
        switch (section)
        {
            case 0: Peak(ctx); break;
            case 1: TrainingStep(ctx); break;
            case 2: Memory(ctx); break;
            case 3: Inference(ctx); break;
            case 4: EndToEnd(ctx); break;
            case 5: Size(ctx); break;
            case 6: Accuracy(ctx); break;
            case 7: ForwardProfile(ctx); break;
            case 8: ThreadsUnderANeighbour(ctx); break;
            case 9: Deployment(ctx); break;
            case 10: MultiAdapter(ctx); break;
            case 11: RetentionCost(ctx); break;
            default: throw new ArgumentOutOfRangeException(nameof(section), section, "Sections are 0 to 11.");
        }
        Console.WriteLine($"  (section {section}: {watch.Elapsed.TotalSeconds:F0} s; load average now {Machine.LoadAverage()})");
    }

    private const int GemmSize = 2048;
    private const double GemmFlops = 2.0 * GemmSize * GemmSize * GemmSize;

    /// <summary>A 2048×2048 fp32 matmul through TorchSharp, three times per sample; returns seconds per matmul.</summary>
    private static Contender Gemm()
    {
        var generator = new Generator(11);
        var a = randn([GemmSize, GemmSize], generator: generator).DetachFromDisposeScope();
        var b = randn([GemmSize, GemmSize], generator: generator).DetachFromDisposeScope();
        return new Contender("GEMM 2048", () =>
        {
            double start = Clock.Now();
            for (int i = 0; i < 3; i++) { using var s = NewDisposeScope(); torch.matmul(a, b); }
            return (Clock.Now() - start) / 3;
        });
    }

    private static double Giga(double flops, double seconds) => flops / seconds / 1e9;

    private static void Peak(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("0. Hardware limit: fp32 GEMM peak (2048x2048 matmul) and the default model's forward, 32x128");
        var w = ctx.Workload;
        double forwardFlops = Workload.ForwardFlops(w.Config, Workload.Batch, Workload.Sequence);
        Report.Line($"forward FLOPs of the default model at 32x128: {forwardFlops / 1e9:F1} GFLOP (projections, attention products, pooler)");
        using var model = w.Build(FineTuningMode.HeadOnly);
        model.eval();
        var batch = w.RandomBatch();
        var contenders = new[]
        {
            Gemm(),
            Contender.Timed("forward", () =>
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                model.forward(batch);
            }),
        };
        var alt = new Alternation(contenders, ctx.Options.Rounds + 2, log: ctx.Log);
        var gemm = alt.Seconds("GEMM 2048").Map(s => Giga(GemmFlops, s));
        r.Figure("GEMM 2048x2048 fp32 throughput (the peak)", gemm, "GFLOP/s", "F1");
        ctx.Shared["peak"] = gemm.Median;
        r.Figure("no-grad forward, default model, 32x128", alt.Seconds("forward"), "s");
        r.Figure("no-grad forward throughput", alt.Seconds("forward").Map(s => Giga(forwardFlops, s)), "GFLOP/s", "F1");
        r.Target("forward throughput / GEMM peak (same round)", alt.RateRatio("forward", forwardFlops, "GEMM 2048", GemmFlops), "x", ">=", 0.80);
    }

    private static void TrainingStep(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("1. Training step, default model, batch 32x128: LoRA r8 (query, value) vs no-grad forward vs full fine-tuning (AdamW)");
        var w = ctx.Workload;
        double f = Workload.ForwardFlops(w.Config, Workload.Batch, Workload.Sequence);
        var batch = w.RandomBatch();
        var labels = Workload.RandomLabels(Workload.Batch, 2);

        using var bare = w.Build(FineTuningMode.HeadOnly);
        bare.eval();
        // The trainer's defaults (the checkpoint's attention dropout, 0.1), and the same with AttentionDropout = 0, which
        // lets the CPU use the fused attention kernel in training too.
        using var lora = new StepRunner(w, FineTuningMode.Lora);
        using var full = new StepRunner(w, FineTuningMode.Full);
        using var loraFused = new StepRunner(w, FineTuningMode.Lora, 0);
        using var fullFused = new StepRunner(w, FineTuningMode.Full, 0);
        using var loraCheckpointed = new StepRunner(w, FineTuningMode.Lora, checkpointing: true);
        Report.Line($"trainable parameters: LoRA {lora.TrainableCount:N0}, full {full.TrainableCount:N0}");

        var contenders = new[]
        {
            Gemm(),
            Contender.Timed("forward", () =>
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                bare.forward(batch);
            }),
            Contender.Timed("LoRA step", () => lora.Step(batch, labels)),
            Contender.Timed("full step", () => full.Step(batch, labels)),
            Contender.Timed("LoRA step, AttentionDropout = 0", () => loraFused.Step(batch, labels)),
            Contender.Timed("full step, AttentionDropout = 0", () => fullFused.Step(batch, labels)),
            Contender.Timed("LoRA step, GradientCheckpointing", () => loraCheckpointed.Step(batch, labels)),
        };
        var alt = new Alternation(contenders, ctx.Options.Rounds, log: ctx.Log);
        r.Figure("GEMM peak (this section's rounds)", alt.Seconds("GEMM 2048").Map(s => Giga(GemmFlops, s)), "GFLOP/s", "F1");
        r.Figure("no-grad forward", alt.Seconds("forward"), "s");
        r.Figure("LoRA r8 training step", alt.Seconds("LoRA step"), "s");
        r.Figure("full fine-tuning step (AdamW)", alt.Seconds("full step"), "s");
        r.Figure("forward, fraction of GEMM peak", alt.RateRatio("forward", f, "GEMM 2048", GemmFlops), "x");
        r.Figure("LoRA step, fraction of peak (nominal 2x forward FLOPs)", alt.RateRatio("LoRA step", 2 * f, "GEMM 2048", GemmFlops), "x");
        r.Figure("full step, fraction of peak (nominal 3x forward FLOPs)", alt.RateRatio("full step", 3 * f, "GEMM 2048", GemmFlops), "x");
        r.Target("LoRA step / no-grad forward", alt.Ratio("LoRA step", "forward"), "x", "<=", 2.2);
        r.Target("LoRA step / full fine-tuning step", alt.Ratio("LoRA step", "full step"), "x", "<=", 0.6);
        r.Figure("AttentionDropout = 0: LoRA step / no-grad forward", alt.Ratio("LoRA step, AttentionDropout = 0", "forward"), "x");
        r.Figure("AttentionDropout = 0: LoRA step / full step", alt.Ratio("LoRA step, AttentionDropout = 0", "full step, AttentionDropout = 0"), "x");
        r.Figure("AttentionDropout = 0 / checkpoint's 0.1: LoRA step", alt.Ratio("LoRA step, AttentionDropout = 0", "LoRA step"), "x");
        r.Figure("GradientCheckpointing / default: LoRA step", alt.Ratio("LoRA step, GradientCheckpointing", "LoRA step"), "x");
        ctx.Shared["lora_step_s"] = alt.Seconds("LoRA step").Median;
        batch.InputIds.Dispose(); batch.AttentionMask.Dispose(); batch.TokenTypeIds.Dispose(); labels.Dispose();
    }

    /// <summary>Where the forward pass's time goes: each kind of operation of one layer, timed alone at the model's shapes, times the layer count.</summary>
    private static void ForwardProfile(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("7. Profile: the forward pass at 32x128 by operation (one layer's operations timed alone, x6 layers), and the training step by phase");
        var w = ctx.Workload;
        var c = w.Config;
        long b = Workload.Batch, s = Workload.Sequence, h = c.HiddenSize, i = c.IntermediateSize, heads = c.NumAttentionHeads, d = h / heads;
        int layers = c.NumHiddenLayers;
        var g = new Generator(5);
        Tensor Keep(Tensor t) => t.DetachFromDisposeScope();
        var x = Keep(randn([b, s, h], generator: g));
        var wide = Keep(randn([b, s, i], generator: g));
        var wSquare = Keep(randn([h, h], generator: g) * 0.02);
        var wUp = Keep(randn([i, h], generator: g) * 0.02);
        var wDown = Keep(randn([h, i], generator: g) * 0.02);
        var bias = Keep(zeros(h));
        var biasUp = Keep(zeros(i));
        var q = Keep(randn([b, heads, s, d], generator: g));
        var k = Keep(randn([b, heads, s, d], generator: g));
        var v = Keep(randn([b, heads, s, d], generator: g));
        var mask = Keep(zeros([b, 1, 1, s]));
        var norm = nn.LayerNorm(h, 1e-12);
        var batch = w.RandomBatch();
        using var bare = w.Build(FineTuningMode.HeadOnly);
        bare.eval();

        double squareFlops = 2.0 * b * s * h * h, upFlops = 2.0 * b * s * h * i, attentionFlops = 4.0 * b * s * s * h;
        Contender Op(string name, Action action) => Contender.Timed(name, () =>
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            action();
        });
        var contenders = new[]
        {
            Gemm(),
            Op("forward (whole model)", () => bare.forward(batch)),
            Op("4 square projections (q, k, v, out)", () => { for (int n = 0; n < 4; n++) nn.functional.linear(x, wSquare, bias); }),
            Op("feed-forward up 384->1536", () => nn.functional.linear(x, wUp, biasUp)),
            Op("feed-forward down 1536->384", () => nn.functional.linear(wide, wDown, bias)),
            Op("SDPA with additive mask", () => nn.functional.scaled_dot_product_attention(q, k, v, mask)),
            Op("SDPA without mask", () => nn.functional.scaled_dot_product_attention(q, k, v)),
            Op("heads split/merge copies (3 in, 1 out)", () =>
            {
                for (int n = 0; n < 3; n++) x.view(b, s, heads, d).transpose(1, 2).contiguous();
                q.transpose(1, 2).reshape(b, s, h);
            }),
            Op("GELU on 32x128x1536", () => nn.functional.gelu(wide)),
            Op("2 LayerNorms + 2 residual adds", () => { for (int n = 0; n < 2; n++) norm.forward(x + x); }),
        };
        var alt = new Alternation(contenders, ctx.Options.Rounds, log: ctx.Log);
        var forward = alt.Seconds("forward (whole model)").Median;
        double peak = Giga(GemmFlops, alt.Seconds("GEMM 2048").Median);
        r.Figure("whole forward", alt.Seconds("forward (whole model)"), "s");
        double sum = 0;
        foreach (var (name, flops) in new (string, double)[]
        {
            ("4 square projections (q, k, v, out)", 4 * squareFlops), ("feed-forward up 384->1536", upFlops), ("feed-forward down 1536->384", upFlops),
            ("SDPA with additive mask", attentionFlops), ("SDPA without mask", attentionFlops), ("heads split/merge copies (3 in, 1 out)", 0),
            ("GELU on 32x128x1536", 0), ("2 LayerNorms + 2 residual adds", 0),
        })
        {
            var perModel = alt.Seconds(name).Map(t => t * layers);
            if (name != "SDPA without mask") sum += perModel.Median;
            string note = $"{100 * perModel.Median / forward:F0}% of the forward" +
                          (flops > 0 ? $", {Giga(flops, alt.Seconds(name).Median):F0} GFLOP/s = {Giga(flops, alt.Seconds(name).Median) / peak:P0} of peak" : "");
            r.Figure($"x{layers}: {name}", perModel, "s", note: note);
        }
        r.Value("sum of the parts above (SDPA with mask)", sum, "s", note: $"{100 * sum / forward:F0}% of the measured forward");

        // The training step by phase.
        foreach (var mode in new[] { FineTuningMode.Lora, FineTuningMode.Full })
        {
            using var runner = new StepRunner(w, mode);
            var (model, optimizer, trainable) = (runner.Model, runner.Optimizer, runner.Trainable);
            var labels = Workload.RandomLabels(Workload.Batch, 2);
            var phases = new Dictionary<string, List<double>> { ["forward + loss"] = [], ["backward"] = [], ["clip + AdamW"] = [] };
            for (int round = 0; round < ctx.Options.Rounds + 1; round++)
            {
                using var scope = NewDisposeScope();
                double start = Clock.Now();
                optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(model.forward(batch), labels);
                loss.item<float>();
                double t1 = Clock.Now() - start;
                loss.backward();
                double t2 = Clock.Now() - start;
                nn.utils.clip_grad_norm_(trainable, 1.0);
                optimizer.step();
                double t3 = Clock.Now() - start;
                if (round == 0) continue;   // warm-up
                phases["forward + loss"].Add(t1);
                phases["backward"].Add(t2 - t1);
                phases["clip + AdamW"].Add(t3 - t2);
            }
            foreach (var (phase, times) in phases)
                r.Figure($"{mode} step: {phase}", Spread.Of(times), "s", note: $"{100 * Spread.Of(times).Median / forward:F0}% of a no-grad forward");
        }

        // Attention in training, forward + backward at the model's shapes: what the checkpoint's attention dropout costs.
        Contender Attention(string name, Func<Tensor, Tensor, Tensor, Tensor> attend) => new(name, () =>
        {
            using var scope = NewDisposeScope();
            var grads = new[] { q, k, v }.Select(t => t.detach().requires_grad_(true)).ToArray();
            double start = Clock.Now();
            attend(grads[0], grads[1], grads[2]).sum().backward();
            return Clock.Now() - start;
        });
        var attention = new Alternation(new[]
        {
            Attention("fused SDPA, no dropout (AttentionDropout = 0)", (q, k, v) => nn.functional.scaled_dot_product_attention(q, k, v, mask)),
            Attention("this package's path with dropout 0.1 (FastDropout mask)", (q, k, v) => Encoders.BertSelfAttention.AttendWithDropout(q, k, v, mask, 0.1)),
            Attention("libtorch SDPA with dropout_p 0.1 (its unfused fallback)", (q, k, v) => nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.1)),
            Attention("unfused, no dropout", (q, k, v) => Encoders.BertSelfAttention.AttendWithDropout(q, k, v, mask, 0)),
        }, ctx.Options.Rounds, log: ctx.Log);
        foreach (var name in attention.Names)
            r.Figure($"x{layers}: attention forward + backward, {name}", attention.Seconds(name).Map(t => t * layers), "s",
                note: $"{100 * attention.Seconds(name).Median * layers / forward:F0}% of a no-grad forward");
    }
}
