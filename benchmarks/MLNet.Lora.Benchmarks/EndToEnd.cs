using System.Diagnostics;
using Microsoft.ML;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>Sections 4 and 5: tokenization, Fit throughput with and without length grouping, and model sizes.</summary>
internal static partial class Sections
{
    private static void EndToEnd(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("4. End to end: tokenization throughput and share, Fit throughput with length-grouped batches vs padding");
        var w = ctx.Workload;
        var tokenizer = w.Encoder.Tokenizer;
        int maxLength = Workload.DefaultOptions(FineTuningMode.Lora).MaxSequenceLength;

        // Tokenization throughput on real short texts.
        var (texts, _, source) = Texts(ctx, "sst2", "train", ctx.Options.Quick ? 2000 : 10000);
        var labels = new int[texts.Count];
        long tokens = texts.Sum(t => (long)tokenizer.Encode(t, null, maxLength).Length);
        var tokenizing = new[]
        {
            Contender.Timed("one thread", () => { foreach (var t in texts) tokenizer.Encode(t, null, maxLength); }),
            Contender.Timed("parallel", () => LabeledTexts.Encode(tokenizer, texts, labels, maxLength)),
        };
        var tokAlt = new Alternation(tokenizing, ctx.Options.Rounds, log: ctx.Log);
        Report.Line($"{texts.Count} {source} texts, {tokens:N0} tokens ({(double)tokens / texts.Count:F1} per text, special tokens included)");
        r.Figure("tokenization, one thread", tokAlt.Seconds("one thread").Map(s => texts.Count / s), "texts/s", "F0",
            note: $"{Spread.Of(tokAlt["one thread"].Select(s => tokens / s)).Median / 1e6:F2} M tokens/s");
        r.Figure("tokenization as Fit does it (Parallel.For)", tokAlt.Seconds("parallel").Map(s => texts.Count / s), "texts/s", "F0",
            note: $"{Spread.Of(tokAlt["parallel"].Select(s => tokens / s)).Median / 1e6:F2} M tokens/s");

        // Share of a training step: tokenizing 32 texts of at least 128 tokens vs one LoRA step on them.
        var longTexts = LongTexts(texts, tokenizer, Workload.Batch, maxLength);
        using var lora = new StepRunner(w, FineTuningMode.Lora);
        var stepLabels = Workload.RandomLabels(Workload.Batch, 2);
        var stepContenders = new[]
        {
            Contender.Timed("tokenize 32", () =>
            {
                using var scope = NewDisposeScope();
                var encoded = LabeledTexts.Encode(tokenizer, longTexts, new int[longTexts.Count], maxLength);
                TokenBatch.Collate(encoded.Items, tokenizer.PadTokenId);
            }),
            new Contender("LoRA step", () =>
            {
                using var scope = NewDisposeScope();
                var encoded = LabeledTexts.Encode(tokenizer, longTexts, new int[longTexts.Count], maxLength);
                var batch = TokenBatch.Collate(encoded.Items, tokenizer.PadTokenId);
                double start = Clock.Now();
                lora.Step(batch, stepLabels);
                return Clock.Now() - start;
            }),
        };
        var stepAlt = new Alternation(stepContenders, ctx.Options.Rounds, log: ctx.Log);
        r.Figure("tokenize + collate 32 texts of 128 tokens", stepAlt.Seconds("tokenize 32").Map(s => s * 1000), "ms");
        r.Figure("LoRA step on them (32x128)", stepAlt.Seconds("LoRA step"), "s");
        r.Target("tokenization / LoRA training step", stepAlt.Ratio("tokenize 32", "LoRA step"), "x", "<", 0.05, "F4");

        // Fit throughput on real short texts: length-grouped (default) vs uniformly drawn batches vs padding to the maximum length.
        int count = ctx.Options.Quick ? 384 : 2048;
        var (_, rows, fitSource) = Texts(ctx, "sst2", "train", count, seed: 2);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(rows);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        Contender FitWith(string name, bool group, bool padToMax) => Contender.Timed(name, () =>
        {
            var options = new LoraTextClassificationTrainer.Options
            {
                Encoder = w.Encoder,
                MaxEpochs = 1,
                Seed = 1,
                GroupByLength = group,
                PadToMaxSequenceLength = padToMax,
                MergeAdaptersAfterTraining = false,
            };
            using var model = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keyed);
        });
        var fits = new[]
        {
            FitWith("grouped", group: true, padToMax: false),
            FitWith("random, padded to longest", group: false, padToMax: false),
            FitWith("padded to max length", group: false, padToMax: true),
        };
        var fitAlt = new Alternation(fits, ctx.Options.Quick ? 1 : 2, warmup: 0, log: ctx.Log);
        Report.Line($"Fit: LoRA r8 defaults, one epoch over {rows.Count} {fitSource} texts, batch 32, max length {maxLength}");
        r.Figure("Fit, length-grouped batches (default)", fitAlt.Seconds("grouped").Map(s => rows.Count / s), "examples/s", "F1");
        r.Figure("Fit, uniformly drawn batches padded to their longest", fitAlt.Seconds("random, padded to longest").Map(s => rows.Count / s), "examples/s", "F1");
        r.Figure($"Fit, every batch padded to {maxLength}", fitAlt.Seconds("padded to max length").Map(s => rows.Count / s), "examples/s", "F1");
        r.Target("speed-up of length grouping over padding to max length", fitAlt.Ratio("padded to max length", "grouped"), "x", ">=", 2.0, "F2");
        r.Figure("speed-up of length grouping over uniformly drawn batches", fitAlt.Ratio("random, padded to longest", "grouped"), "x", "F2");
        double tokenizeShare = tokAlt.Seconds("parallel").Median * rows.Count / texts.Count / fitAlt.Seconds("grouped").Median;
        r.Value("tokenization share of a length-grouped Fit (same texts)", tokenizeShare, "x", "F4");
    }

    /// <summary><paramref name="count"/> texts of at least <paramref name="tokens"/> tokens, each several short texts joined.</summary>
    private static List<string?> LongTexts(IReadOnlyList<string?> texts, BertTextTokenizer tokenizer, int count, int tokens)
    {
        var result = new List<string?>();
        int next = 0;
        for (int i = 0; i < count; i++)
        {
            string text = "";
            while (tokenizer.Encode(text, null, 512).Length < tokens + 2) text += " " + texts[next++ % texts.Count];
            result.Add(text.Trim());
        }
        return result;
    }

    private static void Size(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("5. Size: the saved adapter model (SaveWithAdapters) vs the base checkpoint");
        var w = ctx.Workload;
        var (_, rows, source) = Texts(ctx, "sst2", "train", 64, seed: 3);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(rows);
        string folder = Path.Combine(Path.GetTempPath(), $"mlnet-lora-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        long onnxBytes;
        using (var stream = Checkpoints.DefaultEncoderResources.Open(Checkpoints.DefaultEncoderResources.ModelResource)) onnxBytes = stream.Length;
        long parameterBytes = w.Encoder.ParameterCount * sizeof(float);
        r.Value("base checkpoint: embedded ONNX model", onnxBytes / 1048576.0, "MiB", "F2");
        r.Value("base weights as fp32 (22.7M parameters)", parameterBytes / 1048576.0, "MiB", "F2");
        try
        {
            foreach (var mode in new[] { FineTuningMode.Lora, FineTuningMode.HeadOnly, FineTuningMode.Full })
            {
                var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
                    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
                    {
                        Encoder = w.Encoder,
                        Mode = mode,
                        MaxEpochs = 1,
                        Seed = 1,
                    }));
                var model = pipeline.Fit(data);
                string path = Path.Combine(folder, $"{mode}.zip");
                ml.Model.SaveWithAdapters(model, data.Schema, path);
                long bytes = new FileInfo(path).Length;
                foreach (var part in model) (part as IDisposable)?.Dispose();
                if (mode == FineTuningMode.Lora)
                    r.Target("saved LoRA r8 model (query, value; head; settings) / ONNX base", new Spread(1, 1, 1).Map(_ => (double)bytes / onnxBytes), "x", "<=", 0.01, "F4",
                        note: $"{bytes / 1024.0:F0} KiB");
                else
                    r.Value($"saved {mode} model / ONNX base", (double)bytes / onnxBytes, "x", "F4", note: $"{bytes / 1048576.0:F2} MiB");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        Report.Line($"(trained for one epoch on {rows.Count} {source} rows: sizes do not depend on the data)");
    }
}
