// MLNet.Lora benchmarks: each comparison runs in this one process (memory: in child processes), contenders
// alternating round by round, and prints min / median / max of times and of per-round ratios.
//
//   dotnet run -c Release --project benchmarks/MLNet.Lora.Benchmarks -- [--quick] [--sections 0,1,3] [--data DIR]
//       [--threads N] [--rounds N] [--modes Lora,Full,HeadOnly] [--learning-rate X] [--seeds 1,2,3] [--out results.md]
using System.Diagnostics;
using System.Globalization;
using MLNet.Lora.Benchmarks;
using MLNet.Lora.Native;
using MLNet.Lora.Training;
using TorchSharp;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

BenchmarkOptions options;
try
{
    options = BenchmarkOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(BenchmarkOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(BenchmarkOptions.Usage);
    return 0;
}

if (options.Threads is { } threads) TorchRuntime.IntraOpThreads = threads;
TorchRuntime.EnsureLoaded();
Clock.UseCpuTime = options.CpuClock;

if (options.Child is { } child) return child switch
{
    "spin" => Sections.Spin(options.ChildMode ?? "60"),
    "adapters" => AdapterChild.Run(options),
    "deploy" => DeployChild.Run(options),
    _ => ChildProcess.Run(child, options),
};

var report = new Report();
string header = Machine.Describe(options) +
                $"\nCommand: dotnet run -c Release --project benchmarks/MLNet.Lora.Benchmarks --{(args.Length == 0 ? "" : " " + string.Join(' ', args))}";
Console.WriteLine(header);
var clock = Stopwatch.StartNew();
using (var context = new BenchmarkContext(options, report))
{
    foreach (int section in options.Sections)
    {
        try
        {
            Sections.Run(section, context);
        }
        catch (Exception e)
        {
            Console.WriteLine($"  Section {section} failed: {e.GetType().Name}: {e.Message}");
            Console.WriteLine(e.StackTrace);
        }
    }
}
report.PrintSummary();
Console.WriteLine($"Total {clock.Elapsed.TotalMinutes:F1} min; load average at the end: {Machine.LoadAverage()}");
if (options.OutputPath is { } output) report.WriteMarkdown(output, header);
return 0;

namespace MLNet.Lora.Benchmarks
{
    /// <summary>Command-line settings.</summary>
    internal sealed record BenchmarkOptions
    {
        public const string Usage = """
            MLNet.Lora benchmarks
              --quick            fewer rounds and smaller data (a few minutes)
              --sections LIST    comma-separated section numbers (default all but 6, which trains on real data for
                                 tens of minutes and runs only when named):
                                 0 GEMM peak and forward   1 training step   2 peak memory   3 inference
                                 4 tokenization and Fit throughput   5 size   6 accuracy on real data   7 forward profile
                                 8 threads: scoring beside a busy process (every core vs the share that fits)
                                 9 deployment: TorchSharp vs MLNet.Lora.Onnx fp32/int8, publish size
                                 10 many adapters over one base (memory, mixed batches, load time)
                             11 forgetting remedies: what rehearsal, L2-SP, EWC and O-LoRA add to a step
              --data DIR         the real datasets (default ../shared/data beside the repository)
              --datasets LIST    section 6's datasets (default sst2,ag_news,emotion,banking77)
              --modes LIST       section 6's modes (default Lora,Full,HeadOnly)
              --learning-rate X  section 6: this peak learning rate instead of each mode's default
              --seeds LIST       section 6's training seeds, each a run of every mode (default 1)
              --threads N        torch intra-op threads (default: MLNET_LORA_THREADS, the cgroup quota, or every processor)
              --rounds N         rounds per comparison (default 3 quick, 7 full)
              --clock wall|cpu   time with the wall clock (default) or this process's CPU time (robust to other
                                 jobs on a shared machine when used with --threads 1)
              --out FILE         also write the figures as a Markdown table
            """;

        public bool Quick { get; init; }
        // Accuracy on real data (6) is a run of its own: name it to run it.
        public int[] Sections { get; init; } = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11];
        public string? DataDirectory { get; init; }
        public string[]? Datasets { get; init; }
        public FineTuningMode[] Modes { get; init; } = [FineTuningMode.Lora, FineTuningMode.Full, FineTuningMode.HeadOnly];
        public double? LearningRate { get; init; }
        public int[] Seeds { get; init; } = [1];
        public int? Threads { get; init; }
        public int? RoundsOverride { get; init; }
        public string? OutputPath { get; init; }
        public string? Child { get; init; }
        public string? ChildMode { get; init; }
        public string? ModelDirectory { get; init; }
        public bool Help { get; init; }
        public bool CpuClock { get; init; }

        public int Rounds => RoundsOverride ?? (Quick ? 3 : 7);

        public static BenchmarkOptions Parse(string[] args)
        {
            var o = new BenchmarkOptions();
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                o = args[i] switch
                {
                    "--quick" => o with { Quick = true },
                    "--sections" => o with { Sections = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray() },
                    "--data" => o with { DataDirectory = Next() },
                    "--datasets" => o with { Datasets = Next().Split(',', StringSplitOptions.RemoveEmptyEntries) },
                    "--modes" => o with { Modes = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(m => Enum.Parse<FineTuningMode>(m, ignoreCase: true)).ToArray() },
                    "--learning-rate" => o with { LearningRate = double.Parse(Next(), CultureInfo.InvariantCulture) },
                    "--seeds" => o with { Seeds = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray() },
                    "--threads" => o with { Threads = int.Parse(Next()) },
                    "--rounds" => o with { RoundsOverride = int.Parse(Next()) },
                    "--out" => o with { OutputPath = Next() },
                    "--child" => o with { Child = Next() },
                    "--mode" => o with { ChildMode = Next() },
                    "--model-dir" => o with { ModelDirectory = Next() },
                    "--clock" => o with { CpuClock = Next() switch { "cpu" => true, "wall" => false, var c => throw new ArgumentException($"--clock is wall or cpu, not '{c}'.") } },
                    "--help" or "-h" => o with { Help = true },
                    _ => throw new ArgumentException($"Unknown argument '{args[i]}'."),
                };
            }
            return o;
        }
    }

    /// <summary>What every section shares: options, the report, and the default encoder (loaded on first use).</summary>
    internal sealed class BenchmarkContext(BenchmarkOptions options, Report report) : IDisposable
    {
        private Workload? workload;

        public BenchmarkOptions Options { get; } = options;
        public Report Report { get; } = report;
        public Workload Workload => workload ??= Workload.Load();
        public string DataDirectory { get; } = DataSets.Resolve(options.DataDirectory);
        public Dictionary<string, double> Shared { get; } = new();

        public void Log(string text) => Console.WriteLine(text);

        public void Dispose() => workload?.Dispose();
    }

    /// <summary>The machine the figures come from.</summary>
    internal static class Machine
    {
        public static string Describe(BenchmarkOptions options)
        {
            string cpu = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "unknown"
                : "unknown";
            return $"MLNet.Lora benchmarks{(options.Quick ? " (quick)" : "")}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n" +
                   $"CPU: {cpu} (vector extensions: {VectorExtensions()}), {Environment.ProcessorCount} logical cores; torch threads {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}; " +
                   $"TorchSharp {typeof(torch).Assembly.GetName().Version}; .NET {Environment.Version}; {Environment.OSVersion}; clock: {(options.CpuClock ? "process CPU time" : "wall")}\n" +
                   $"Load average at start: {LoadAverage()} (other jobs on the machine add noise; contenders alternate so it hits them alike)";
        }

        /// <summary>The CPU's SIMD flags that decide GEMM and int8 kernels (AVX2, FMA, AVX-512 and VNNI variants, AMX).</summary>
        public static string VectorExtensions()
        {
            if (!File.Exists("/proc/cpuinfo")) return "unknown";
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags"))?.Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
            var wanted = flags.Where(f => f is "avx" or "avx2" or "fma" or "avx_vnni" || f.StartsWith("avx512") || f.StartsWith("amx")).ToArray();
            return wanted.Length == 0 ? "none of AVX/AVX2/AVX-512" : string.Join(' ', wanted);
        }

        public static string LoadAverage() =>
            File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
    }
}
