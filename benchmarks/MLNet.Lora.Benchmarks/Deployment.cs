using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using MLNet.Lora.Export;
using MLNet.Lora.Onnx;
using TorchSharp;

namespace MLNet.Lora.Benchmarks;

/// <summary>
/// Section 9: deployment. A LoRA model fine-tuned on SST-2 is exported to ONNX (float32 and dynamic int8) and scored on
/// the 872 SST-2 dev texts, batch 64, by the TorchSharp transformer and by MLNet.Lora.Onnx: first in this process with
/// ONNX Runtime's spinning on (its default) and off, then each contender in a child process of its own (no in-process
/// interference). Then dev accuracy of each, and the published size of a scoring-only app for each package.
/// </summary>
internal static partial class Sections
{
    private static void Deployment(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("9. Deployment: TorchSharp transformer vs MLNet.Lora.Onnx fp32 and int8, SST-2 dev, batch 64; publish size");
        var w = ctx.Workload;
        int threads = torch.get_num_threads();
        string folder = Path.Combine(Path.GetTempPath(), $"mlnet-lora-bench-deploy-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            // A model worth measuring accuracy on: LoRA on an SST-2 training sample, one epoch.
            var (_, trainRows, trainSource) = Texts(ctx, "sst2", "train", ctx.Options.Quick ? 1000 : 4000, seed: 5);
            var (devTexts, devRows, devSource) = Texts(ctx, "sst2", "dev", 872);
            var ml = new MLContext(seed: 1);
            var train = ml.Data.LoadFromEnumerable(trainRows);
            var watch = Stopwatch.StartNew();
            var model = ml.Transforms.Conversion.MapValueToKey("Label")
                .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
                {
                    Encoder = w.Encoder, MaxEpochs = 1, MaxSequenceLength = 64, Seed = 1,
                }))
                .Fit(train);
            Report.Line($"fine-tuned LoRA r8 on {trainRows.Count} {trainSource} rows in {watch.Elapsed.TotalSeconds:F0} s (max length 64)");
            var lora = ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single();
            string fp32 = Path.Combine(folder, "model.onnx"), int8 = Path.Combine(folder, "model.int8.onnx"), zip = Path.Combine(folder, "model.zip");
            ml.Model.ExportLoraToOnnx(model, fp32);
            ml.Model.ExportLoraToOnnx(model, int8, new OnnxExportOptions { Quantization = OnnxQuantization.DynamicInt8 });
            ml.Model.SaveWithAdapters(model, train.Schema, zip);
            r.Value("exported ONNX file, fp32", new FileInfo(fp32).Length / 1048576.0, "MiB", "F1");
            r.Value("exported ONNX file, dynamic int8", new FileInfo(int8).Length / 1048576.0, "MiB", "F1");

            var labels = lora.Settings.Classes!.Values;
            double Accuracy(float[][] scores) => devRows.Zip(scores).Count(p => labels[p.Second[1] > p.Second[0] ? 1 : 0] == p.First.Label) / (double)devRows.Count;
            string[] texts = devTexts.Select(t => t ?? "").ToArray();

            // In one process, alternating; ONNX Runtime's threads spinning after a call (its default) or not.
            foreach (bool spinning in new[] { true, false })
            {
                var scoring = new LoraOnnxScoringOptions { BatchSize = 64, IntraOpThreads = threads, AllowSpinning = spinning };
                var empty = ml.Data.LoadFromEnumerable(new[] { new TextRow() });
                using var onnx32 = ml.Transforms.LoraOnnxTextClassification(fp32, options: scoring).Fit(empty);
                using var onnx8 = ml.Transforms.LoraOnnxTextClassification(int8, options: scoring).Fit(empty);
                string tag = spinning ? "one process, ORT spinning on" : "one process, ORT spinning off";
                var alt = new Alternation(
                [
                    Contender.Timed("torchsharp", () => lora.PredictProbabilities(texts)),
                    Contender.Timed("onnx fp32", () => onnx32.PredictProbabilities(texts)),
                    Contender.Timed("onnx int8", () => onnx8.PredictProbabilities(texts)),
                ], ctx.Options.Rounds, log: ctx.Log);
                r.Figure($"TorchSharp transformer, {devSource} ({tag})", alt.Seconds("torchsharp"), "s");
                r.Figure($"MLNet.Lora.Onnx fp32 ({tag})", alt.Seconds("onnx fp32"), "s");
                r.Figure($"MLNet.Lora.Onnx int8 ({tag})", alt.Seconds("onnx int8"), "s");
                r.Figure($"fp32 / TorchSharp ({tag})", alt.Ratio("onnx fp32", "torchsharp"), "x");
                r.Figure($"int8 / fp32 ({tag})", alt.Ratio("onnx int8", "onnx fp32"), "x");
                if (!spinning)
                {
                    double torchAccuracy = Accuracy(lora.PredictProbabilities(texts));
                    double fp32Accuracy = Accuracy(onnx32.PredictProbabilities(texts)), int8Accuracy = Accuracy(onnx8.PredictProbabilities(texts));
                    r.Value($"dev accuracy, TorchSharp transformer ({devSource})", torchAccuracy * 100, "%", "F2");
                    r.Value("dev accuracy, MLNet.Lora.Onnx fp32", fp32Accuracy * 100, "%", "F2");
                    r.Value("dev accuracy, MLNet.Lora.Onnx int8", int8Accuracy * 100, "%", "F2");
                    r.Target("int8 accuracy - fp32 accuracy (points)", new Spread((int8Accuracy - fp32Accuracy) * 100, (int8Accuracy - fp32Accuracy) * 100, (int8Accuracy - fp32Accuracy) * 100), "points", ">=", -1.0, "F2");
                }
            }

            // Isolated: each contender alone in a child process, the same rounds; the parent waits idle. ONNX Runtime
            // with its spinning on (the package's default) and off.
            string[] modes = ["torchsharp", "fp32", "int8", "fp32-nospin", "int8-nospin"];
            var isolated = modes.ToDictionary(m => m, _ => new List<double>());
            for (int round = 0; round < ctx.Options.Rounds; round++)
            {
                foreach (string mode in modes.Skip(round % modes.Length).Concat(modes.Take(round % modes.Length)))
                    isolated[mode].Add(DeployChild.Measure(mode, folder, ctx.Options));
                ctx.Log($"    isolated round {round + 1}/{ctx.Options.Rounds}: " + string.Join(", ", modes.Select(m => $"{m} {isolated[m][^1]:F3}s")));
            }
            Spread Ratio(string a, string b) => Spread.Of(isolated[a].Zip(isolated[b], (x, y) => x / y));
            r.Figure("TorchSharp transformer (child process each)", Spread.Of(isolated["torchsharp"]), "s");
            r.Figure("MLNet.Lora.Onnx fp32 (child process each, spinning on)", Spread.Of(isolated["fp32"]), "s");
            r.Figure("MLNet.Lora.Onnx int8 (child process each, spinning on)", Spread.Of(isolated["int8"]), "s");
            r.Figure("MLNet.Lora.Onnx fp32 (child process each, spinning off)", Spread.Of(isolated["fp32-nospin"]), "s");
            r.Figure("MLNet.Lora.Onnx int8 (child process each, spinning off)", Spread.Of(isolated["int8-nospin"]), "s");
            r.Target("fp32 / TorchSharp transformer, isolated, spinning on (time)", Ratio("fp32", "torchsharp"), "x", "<=", 0.9);
            r.Target("int8 / fp32, isolated, spinning on (time)", Ratio("int8", "fp32"), "x", "<=", 0.6);
            r.Figure("fp32 / TorchSharp transformer, isolated, spinning off (time)", Ratio("fp32-nospin", "torchsharp"), "x");
            r.Figure("int8 / fp32, isolated, spinning off (time)", Ratio("int8-nospin", "fp32-nospin"), "x");

            PublishSizes(ctx, fp32);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary><c>dotnet publish -c Release -r linux-x64</c> of the scoring-only example (MLNet.Lora.Onnx) and of a TorchSharp app (MLNet.Lora + TorchSharp-cpu).</summary>
    private static void PublishSizes(BenchmarkContext ctx, string fp32Model)
    {
        var r = ctx.Report;
        string? root = FindRepositoryRoot();
        if (root is null)
        {
            Report.Line("(repository not found above the working directory: publish sizes skipped)");
            return;
        }
        long Publish(string project)
        {
            string output = Path.Combine(Path.GetTempPath(), $"mlnet-lora-publish-{Environment.ProcessId}-{Path.GetFileNameWithoutExtension(project)}");
            var start = new ProcessStartInfo("dotnet", ["publish", Path.Combine(root, project), "-c", "Release", "-r", "linux-x64", "--self-contained", "false", "-o", output, "-v", "quiet", "-nologo"])
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            using var process = Process.Start(start)!;
            string log = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            try
            {
                if (process.ExitCode != 0) throw new InvalidOperationException($"dotnet publish {project} failed: {log}");
                return new DirectoryInfo(output).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
            }
            finally
            {
                if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
            }
        }
        long onnxApp = Publish("examples/OnnxDeploy/Score/OnnxDeploy.Score.csproj");
        long torchApp = Publish("examples/OnnxDeploy/Train/OnnxDeploy.Train.csproj");
        long model = new FileInfo(fp32Model).Length;
        r.Value("publish linux-x64, MLNet.Lora.Onnx scoring app (OnnxDeploy.Score)", onnxApp / 1e6, "MB", "F1");
        r.Target("publish linux-x64, MLNet.Lora.Onnx app + fp32 model", new Spread((onnxApp + model) / 1e6, (onnxApp + model) / 1e6, (onnxApp + model) / 1e6), "MB", "<=", 150, "F1");
        r.Value("publish linux-x64, TorchSharp app (OnnxDeploy.Train: MLNet.Lora + TorchSharp-cpu)", torchApp / 1e6, "MB", "F1",
            "the TorchSharp transformer also needs its base encoder in the conversion cache");
    }

    private static string? FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MLNet.Lora.sln"))) return dir.FullName;
        return null;
    }
}

/// <summary>One deployment contender alone in a child process: load, warm up once, score the dev texts once, print the time.</summary>
internal static class DeployChild
{
    public static double Measure(string mode, string folder, BenchmarkOptions options)
    {
        string[] extra = options.DataDirectory is { } data ? ["--model-dir", folder, "--data", data] : ["--model-dir", folder];
        return double.Parse(ChildProcess.Launch("deploy", mode, DeployMarker, options, extra).Split(' ')[1], CultureInfo.InvariantCulture);
    }

    private const string DeployMarker = "DEPLOY-RESULT";

    /// <summary>In the child.</summary>
    public static int Run(BenchmarkOptions options)
    {
        string folder = options.ModelDirectory ?? throw new ArgumentException("--child deploy needs --model-dir.");
        string root = DataSets.Resolve(options.DataDirectory);
        var rows = DataSets.FileOf(root, "sst2", "dev") is { } path ? DataSets.Sample(DataSets.Read(path), 872, 1) : DataSets.Synthetic(872, 1);
        string[] texts = rows.Select(r => r.Text).ToArray();
        var ml = new MLContext(seed: 1);
        Func<float[][]> score;
        IDisposable owner;
        if (options.ChildMode == "torchsharp")
        {
            var model = ml.Model.LoadWithAdapters(Path.Combine(folder, "model.zip"), out _);
            var lora = ((IEnumerable<ITransformer>)model).OfType<LoraTextClassificationTransformer>().Single();
            score = () => lora.PredictProbabilities(texts);
            owner = lora;
        }
        else
        {
            string mode = options.ChildMode ?? "fp32";
            string file = mode.StartsWith("int8", StringComparison.Ordinal) ? "model.int8.onnx" : "model.onnx";
            var scoring = new LoraOnnxScoringOptions { BatchSize = 64, IntraOpThreads = torch.get_num_threads(), AllowSpinning = !mode.EndsWith("-nospin", StringComparison.Ordinal) };
            var onnx = ml.Transforms.LoraOnnxTextClassification(Path.Combine(folder, file), options: scoring).Fit(ml.Data.LoadFromEnumerable(new[] { new TextRow() }));
            score = () => onnx.PredictProbabilities(texts);
            owner = onnx;
        }
        using (owner)
        {
            score();                                    // warm-up: first-call allocations and JIT
            Alternation.Cleanup();
            double begin = Clock.Now();
            score();
            Console.WriteLine($"{DeployMarker} {(Clock.Now() - begin).ToString("R", CultureInfo.InvariantCulture)}");
        }
        return 0;
    }
}
