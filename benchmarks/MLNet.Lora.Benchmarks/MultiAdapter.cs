using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Training;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>
/// Section 10: many adapters over one base. Peak RSS of a <see cref="LoraAdapterSet"/> of 50 rank-8 adapters, of one
/// loaded model and of 50 loaded models (each in a fresh child process); mixed-batch throughput of 8 adapters (rows
/// shuffled) against one model, at batch 64 on SST-2 texts; the time to add an adapter from a zip.
/// </summary>
internal static partial class Sections
{
    private const int SetAdapterCount = 50;
    private const int MixedAdapterCount = 8;

    private static void MultiAdapter(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section($"10. Many adapters over one base: memory of {SetAdapterCount} rank-8 adapters, mixed batches of {MixedAdapterCount} adapters at batch 64, adapter load time");
        var w = ctx.Workload;
        string folder = Directory.CreateTempSubdirectory("mlnet-lora-adapters-").FullName;
        try
        {
            var ml = new MLContext(seed: 1);
            var paths = AdapterFiles.Write(ml, w, folder, SetAdapterCount);
            Report.Line($"{SetAdapterCount} adapter zips (rank 8, query and value, 2 classes, random B), {new FileInfo(paths[0]).Length / 1024.0:F0} KiB each");

            // Memory: fresh child processes, each loading the default base from the cache as a service would.
            string[] modes = ["set", "one", "models"];
            var peaks = modes.ToDictionary(m => m, _ => new List<double>());
            int rounds = ctx.Options.Quick ? 2 : 3;
            for (int round = 0; round < rounds; round++)
                for (int k = 0; k < modes.Length; k++)
                {
                    string mode = modes[(round + k) % modes.Length];
                    peaks[mode].Add(AdapterChild.Measure(mode, folder, ctx.Options));
                }
            ctx.Log("    peaks: " + string.Join(", ", modes.Select(m => $"{m} {string.Join('/', peaks[m].Select(p => p.ToString("F0", CultureInfo.InvariantCulture)))} MiB")));
            r.Figure("peak RSS, one loaded model (LoadWithAdapters), 64 rows scored", Spread.Of(peaks["one"]), "MiB", "F0");
            r.Figure($"peak RSS, LoraAdapterSet of {SetAdapterCount} adapters, 64 mixed rows scored", Spread.Of(peaks["set"]), "MiB", "F0");
            r.Figure($"peak RSS, {SetAdapterCount} models loaded one by one (bases shared by SHA-256), 64 rows each", Spread.Of(peaks["models"]), "MiB", "F0");
            r.Target($"set of {SetAdapterCount} / one model", Spread.Of(peaks["set"].Zip(peaks["one"], (a, b) => a / b)), "x", "<=", 1.3);
            r.Figure($"{SetAdapterCount} loaded models / one model", Spread.Of(peaks["models"].Zip(peaks["one"], (a, b) => a / b)), "x");
            double baseMiB = w.Encoder.ParameterCount * sizeof(float) / 1048576.0;
            r.Figure($"{SetAdapterCount} models each holding its own base / one model (computed: one + {SetAdapterCount - 1} x {baseMiB:F0} MiB of base weights)",
                Spread.Of(peaks["one"].Select(one => (one + (SetAdapterCount - 1) * baseMiB) / one)), "x", "F1");

            // Throughput: the package's scoring through IDataView, one model vs the set (one adapter, then eight shuffled).
            var texts = ScoringTexts(ctx, ctx.Options.Quick ? 256 : 512);
            Report.Line($"texts: {texts.Source}, {texts.Rows.Count} rows, mean {texts.Rows.Average(t => t.Split(' ').Length):F1} words");
            var single = ml.Model.LoadWithAdapters(paths[0], out _, w.Encoder);
            using var set = new LoraAdapterSet(ml, w.Encoder) { InferenceBatchSize = 64 };
            for (int i = 0; i < MixedAdapterCount; i++) set.Add($"adapter{i}", paths[i]);
            var random = new Random(5);
            var singleData = ml.Data.LoadFromEnumerable(texts.Rows.Select(t => new TextRow { Text = t }).ToList());
            var oneAdapter = ml.Data.LoadFromEnumerable(texts.Rows.Select(t => new AdapterRow { Adapter = "adapter0", Text = t }).ToList());
            var mixed = ml.Data.LoadFromEnumerable(texts.Rows.Select(t => new AdapterRow { Adapter = $"adapter{random.Next(MixedAdapterCount)}", Text = t }).ToList());
            var scorer = ml.Transforms.LoraMultiAdapterClassification(set);
            void Score(ITransformer model, IDataView data) => model.Transform(data).GetColumn<float[]>("Score").Count();
            var alt = new Alternation(
            [
                Contender.Timed("single", () => Score(single, singleData)),
                Contender.Timed("set1", () => Score(scorer, oneAdapter)),
                Contender.Timed("set8", () => Score(scorer, mixed)),
            ], ctx.Options.Rounds, log: ctx.Log);
            int n = texts.Rows.Count;
            r.Figure("one model, rows/s (batch 64)", alt.Seconds("single").Map(s => n / s), "rows/s", "F0");
            r.Figure("set, every row for one adapter, rows/s", alt.Seconds("set1").Map(s => n / s), "rows/s", "F0");
            r.Figure($"set, rows shuffled over {MixedAdapterCount} adapters, rows/s", alt.Seconds("set8").Map(s => n / s), "rows/s", "F0");
            r.Figure("set one-adapter throughput / one model", alt.Ratio("single", "set1"), "x");
            r.Target($"mixed {MixedAdapterCount}-adapter throughput / one model", alt.Ratio("single", "set8"), "x", ">=", 0.8);
            (single as IDisposable)?.Dispose();

            // Load time: adding an adapter from its zip to a serving set.
            var loads = new List<double>();
            for (int i = MixedAdapterCount; i < Math.Min(paths.Count, MixedAdapterCount + (ctx.Options.Quick ? 5 : 15)); i++)
            {
                double start = Clock.Now();
                set.Add($"adapter{i}", paths[i]);
                loads.Add(Clock.Now() - start);
            }
            r.Figure("adding one adapter from its zip (read, SHA-256 checks, into the set)", Spread.Of(loads.Select(s => s * 1000)), "ms", "F0");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>SST-2 dev texts when the data is there, else synthetic SST-2-length sentences.</summary>
    private static (List<string> Rows, string Source) ScoringTexts(BenchmarkContext ctx, int count)
    {
        string? file = DataSets.FileOf(ctx.DataDirectory, "sst2", "dev") ?? DataSets.FileOf(ctx.DataDirectory, "sst2", "test");
        return file is not null
            ? (DataSets.Sample(DataSets.Read(file), count, seed: 3).Select(t => t.Text).ToList(), $"SST-2 ({Path.GetFileName(file)})")
            : (DataSets.Synthetic(count, seed: 3).Select(t => t.Text).ToList(), "synthetic SST-2-length sentences (no SST-2 data found)");
    }
}

/// <summary>A row naming its adapter.</summary>
public sealed class AdapterRow
{
    /// <summary>The adapter.</summary>
    public string Adapter { get; set; } = "";

    /// <summary>The text.</summary>
    public string Text { get; set; } = "";
}

/// <summary>Adapter zips for section 10: the trainer's default LoRA settings, random non-zero factors and heads.</summary>
internal static class AdapterFiles
{
    public static List<string> Write(MLContext ml, Workload w, string folder, int count)
    {
        var shared = SharedBaseEncoder.For(w.Encoder);
        var settings = w.Settings(FineTuningMode.Lora) with { Classes = new Integration.ClassKeyValues("Text", ["negative", "positive"]) };
        var schema = ml.Data.LoadFromEnumerable(new List<TextRow>()).Schema;
        var paths = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var model = LoraTextClassificationTransformer.BuildModel(shared.CreateEncoder(frozen: true), settings);
            Workload.RandomizeAdapters(model, seed: 100 + i);
            using (no_grad()) model.Classifier.weight!.normal_(0, 0.5);
            using var transformer = new LoraTextClassificationTransformer(ml, model, shared, settings, CPU);
            string path = Path.Combine(folder, $"adapter{i}.zip");
            ml.Model.SaveWithAdapters(transformer, schema, path);
            paths.Add(path);
        }
        return paths;
    }
}

/// <summary>The memory contenders of section 10, each in a child process of this program.</summary>
internal static class AdapterChild
{
    private const string Marker = "ADAPTER-MEMORY";

    public static double Measure(string mode, string folder, BenchmarkOptions options) =>
        double.Parse(ChildProcess.Launch("adapters", mode, Marker, options, "--data", folder).Split(' ')[1], CultureInfo.InvariantCulture);

    /// <summary>In the child: load what the mode says, score 64 rows, print the peak RSS of the whole process.</summary>
    public static int Run(BenchmarkOptions options)
    {
        string folder = options.DataDirectory ?? throw new ArgumentException("--data names the adapters' folder.");
        var paths = Enumerable.Range(0, 50).Select(i => Path.Combine(folder, $"adapter{i}.zip")).Where(File.Exists).ToList();
        var ml = new MLContext(seed: 1);
        var texts = DataSets.Synthetic(64, seed: 3);
        var keep = new List<object>();
        switch (options.ChildMode)
        {
            case "set":
                var set = new LoraAdapterSet(ml);
                for (int i = 0; i < paths.Count; i++) set.Add($"adapter{i}", paths[i]);
                var rows = texts.Select((t, i) => new AdapterRow { Adapter = $"adapter{i % paths.Count}", Text = t.Text }).ToList();
                ml.Transforms.LoraMultiAdapterClassification(set).Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").Count();
                keep.Add(set);
                break;
            case "one" or "models":
                foreach (var path in options.ChildMode == "one" ? paths.Take(1) : paths)
                {
                    var model = ml.Model.LoadWithAdapters(path, out _);
                    model.Transform(ml.Data.LoadFromEnumerable(texts)).GetColumn<float[]>("Score").Count();
                    keep.Add(model);
                }
                break;
            default:
                throw new ArgumentException($"Unknown adapter-memory mode '{options.ChildMode}'.");
        }
        double peak = ChildProcess.Status("VmHWM");
        Console.WriteLine(FormattableString.Invariant($"{Marker} {peak:F1} {keep.Count}"));
        GC.KeepAlive(keep);
        return 0;
    }
}
