using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>Section 3: inference.</summary>
internal static partial class Sections
{
    private static void Inference(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("3. Inference: merged adapters vs bare base, unmerged vs base, the package's batched scoring vs ONNX Runtime (same embedded ONNX model)");
        var w = ctx.Workload;
        int threads = torch.get_num_threads();
        var items = w.RandomItems();
        var batch = w.RandomBatch();
        using var bare = w.Build(FineTuningMode.HeadOnly);
        bare.eval();
        var lora = w.Build(FineTuningMode.Lora);
        Workload.RandomizeAdapters(lora);
        var ml = new MLContext(seed: 1);
        using var transformer = w.Transformer(lora, FineTuningMode.Lora);
        using var ort = OnnxRunner.Create(threads);
        Report.Line($"ONNX Runtime {OrtEnv.Instance().GetVersionString()}: {threads} intra-op threads (as torch), graph optimisation ALL, sequential execution");

        double Forward(bool merged)
        {
            if (merged) transformer.MergeAdapters(); else transformer.UnmergeAdapters();
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            double start = Clock.Now();
            lora.forward(batch);
            return Clock.Now() - start;
        }
        var contenders = new[]
        {
            Gemm(),
            Contender.Timed("base", () =>
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                bare.forward(batch);
            }),
            new Contender("merged", () => Forward(merged: true)),
            new Contender("unmerged", () => Forward(merged: false)),
            new Contender("package", () =>
            {
                transformer.MergeAdapters();
                double start = Clock.Now();
                transformer.ScoreEncoded(items);
                return Clock.Now() - start;
            }),
            Contender.Timed("onnxruntime", () => ort.Run(items, w.Encoder.Tokenizer.PadTokenId)),
        };
        var alt = new Alternation(contenders, ctx.Options.Rounds, log: ctx.Log);
        double f = Workload.ForwardFlops(w.Config, Workload.Batch, Workload.Sequence);
        r.Figure("bare base model forward (no grad)", alt.Seconds("base"), "s");
        r.Figure("merged LoRA forward", alt.Seconds("merged"), "s");
        r.Figure("unmerged LoRA forward", alt.Seconds("unmerged"), "s");
        r.Figure("package scoring (ScoreEncoded: collate, forward, softmax)", alt.Seconds("package"), "s");
        r.Figure("ONNX Runtime, same batch (last_hidden_state)", alt.Seconds("onnxruntime"), "s");
        r.Figure("package scoring, fraction of GEMM peak", alt.RateRatio("package", f, "GEMM 2048", GemmFlops), "x");
        r.Figure("ONNX Runtime, fraction of GEMM peak", alt.RateRatio("onnxruntime", f, "GEMM 2048", GemmFlops), "x");
        r.Target("merged / base", alt.Ratio("merged", "base"), "x", "<=", 1.03);
        r.Figure("unmerged / base", alt.Ratio("unmerged", "base"), "x");
        r.Target("package scoring / ONNX Runtime (32x128)", alt.Ratio("package", "onnxruntime"), "x", "<=", 1.1);

        // Real short texts: the public PredictProbabilities (tokenize, sort by length, batches of 64) against ONNX Runtime fed the same batches.
        var texts = Texts(ctx, "sst2", "dev", 872);
        var tokenizer = w.Encoder.Tokenizer;
        int maxLength = transformer.Settings.MaxSequenceLength, batchSize = transformer.Settings.InferenceBatchSize;
        var real = new[]
        {
            Contender.Timed("package texts", () => transformer.PredictProbabilities(texts.Texts)),
            Contender.Timed("onnxruntime texts", () =>
            {
                var encoded = texts.Texts.Select(t => tokenizer.Encode(t, null, maxLength)).OrderBy(e => e.Length).ToArray();
                for (int start = 0; start < encoded.Length; start += batchSize)
                    ort.Run(encoded.AsSpan(start, Math.Min(batchSize, encoded.Length - start)).ToArray(), tokenizer.PadTokenId);
            }),
        };
        var realAlt = new Alternation(real, ctx.Options.Rounds, log: ctx.Log);
        r.Figure($"PredictProbabilities on {texts.Texts.Count} {texts.Source} texts", realAlt.Seconds("package texts").Map(s => texts.Texts.Count / s), "texts/s", "F0");
        r.Figure($"ONNX Runtime on the same batches (tokenizing with the package)", realAlt.Seconds("onnxruntime texts").Map(s => texts.Texts.Count / s), "texts/s", "F0");
        r.Target($"package / ONNX Runtime, {texts.Source} texts (time)", realAlt.Ratio("package texts", "onnxruntime texts"), "x", "<=", 1.1);
    }

    /// <summary>Texts of a real split when present, else synthetic ones (said in <c>Source</c>).</summary>
    private static (List<string?> Texts, List<TextRow> Rows, string Source) Texts(BenchmarkContext ctx, string dataset, string split, int count, int seed = 1)
    {
        if (DataSets.FileOf(ctx.DataDirectory, dataset, split) is { } path)
        {
            var rows = DataSets.Sample(DataSets.Read(path), count, seed);
            return (rows.Select(x => (string?)x.Text).ToList(), rows, $"{dataset} {split}");
        }
        Report.Line($"({dataset}/{split}.tsv not found under {ctx.DataDirectory}: using synthetic sentences)");
        var synthetic = DataSets.Synthetic(count, seed);
        return (synthetic.Select(x => (string?)x.Text).ToList(), synthetic, "synthetic");
    }
}

/// <summary>ONNX Runtime over the embedded all-MiniLM-L6-v2 (the file the default encoder is converted from).</summary>
internal sealed class OnnxRunner : IDisposable
{
    private readonly InferenceSession session;
    private static readonly string[] Outputs = ["last_hidden_state"];

    private OnnxRunner(InferenceSession session) => this.session = session;

    public static OnnxRunner Create(int threads)
    {
        byte[] bytes;
        using (var stream = DefaultEncoderResources.Open(DefaultEncoderResources.ModelResource))
        using (var memory = new MemoryStream())
        {
            stream.CopyTo(memory);
            bytes = memory.ToArray();
        }
        var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        return new OnnxRunner(new InferenceSession(bytes, options));
    }

    /// <summary>Runs the model on <paramref name="items"/> padded to the longest; returns the last hidden state's element count.</summary>
    public long Run(IReadOnlyList<EncodedText> items, int padTokenId)
    {
        var padded = PaddedIds.Pad(items, padTokenId);
        int[] dims = [padded.Batch, padded.Sequence];
        using var results = session.Run(
        [
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(padded.InputIds, dims)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(padded.AttentionMask, dims)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(padded.TokenTypeIds, dims)),
        ], Outputs);
        return results.First().AsTensor<float>().Length;
    }

    public void Dispose() => session.Dispose();
}
