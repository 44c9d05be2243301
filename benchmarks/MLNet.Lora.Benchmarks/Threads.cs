using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Microsoft.ML;
using MLNet.Lora.Native;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>
/// Section 8: scoring 1,000 short texts with torch's default thread count (every core) against the count that fits
/// the process's share of the machine, alone and while a second process keeps one core busy (what a node running
/// several shards looks like). The share under the neighbour is the processor count less one, which is what a
/// container's CPU quota says when the node is split that way; the selection rounds it as <see cref="TorchRuntime"/> does.
/// </summary>
internal static partial class Sections
{
    private const int ThreadTexts = 1000;

    private static void ThreadsUnderANeighbour(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("8. Threads: scoring 1,000 texts with every core's threads vs the share that fits, alone and beside a busy process");
        Report.Line($"CPU flags: {CpuFlags()}");
        Report.Line($"cgroup CPU quota of this process: {CgroupCpuQuota.Read()?.ToString("0.###", CultureInfo.InvariantCulture) ?? "none"}; the runtime picked: {TorchRuntime.Threads}");
        int all = Environment.ProcessorCount;
        int fitting = TorchThreadSelection.Choose(null, null, quotaCpus: all - 1, all).Count;
        Report.Line($"contenders: {all} threads (every processor, libtorch's default) vs {fitting} (a quota of {all - 1} CPUs, rounded down)");
        if (all < 2)
        {
            Report.Line("SKIPPED: one processor, so no share to compare.");
            return;
        }

        var w = ctx.Workload;
        var model = w.Build(FineTuningMode.Lora);
        Workload.RandomizeAdapters(model);
        using var transformer = w.Transformer(model, FineTuningMode.Lora);
        transformer.MergeAdapters();
        var texts = ShortTexts(ThreadTexts);
        int original = torch.get_num_threads();
        Contender Scoring(string name, int threads) => Contender.Timed(name, () =>
        {
            torch.set_num_threads(threads);
            transformer.PredictProbabilities(texts);
        });
        var contenders = new[] { Scoring("every core", all), Scoring("fitting", fitting) };
        try
        {
            var alone = new Alternation(contenders, ctx.Options.Rounds, log: ctx.Log);
            r.Figure($"alone: 1,000 texts, {all} threads", alone.Seconds("every core"), "s");
            r.Figure($"alone: 1,000 texts, {fitting} threads", alone.Seconds("fitting"), "s");
            r.Figure($"alone: {all} threads / {fitting} threads (time)", alone.Ratio("every core", "fitting"), "x");

            // The neighbour spins one core for at most ten minutes; it is killed as soon as the measurement ends.
            using var neighbour = StartSpinner(TimeSpan.FromMinutes(10));
            try
            {
                var busy = new Alternation(contenders, ctx.Options.Rounds, log: ctx.Log);
                r.Figure($"busy neighbour: 1,000 texts, {all} threads", busy.Seconds("every core"), "s");
                r.Figure($"busy neighbour: 1,000 texts, {fitting} threads", busy.Seconds("fitting"), "s");
                r.Figure($"busy neighbour: throughput, {fitting} threads", busy.Seconds("fitting").Map(s => ThreadTexts / s), "texts/s", "F0");
                r.Target($"busy neighbour: {all} threads / {fitting} threads (time)", busy.Ratio("every core", "fitting"), "x", ">=", 1.0,
                    note: "above 1: the fitting count is faster under a neighbour");
            }
            finally
            {
                if (!neighbour.HasExited) neighbour.Kill();
            }
        }
        finally
        {
            torch.set_num_threads(original);
        }
    }

    /// <summary>Short review-like texts, 5 to 20 words, from a fixed seed.</summary>
    private static List<string> ShortTexts(int count)
    {
        string[] words = ["the", "movie", "film", "was", "really", "not", "good", "bad", "plot", "acting", "great", "boring", "story",
            "music", "scenes", "and", "but", "very", "funny", "slow", "ending", "characters", "too", "long", "loved", "hated"];
        var random = new Random(5);
        return Enumerable.Range(0, count).Select(_ => string.Join(' ', Enumerable.Range(0, random.Next(5, 21)).Select(_ => words[random.Next(words.Length)]))).ToList();
    }

    /// <summary>This program again as a child that keeps one core busy for at most <paramref name="limit"/>.</summary>
    private static Process StartSpinner(TimeSpan limit)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("Cannot find this program's path.");
        var start = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        foreach (string a in new[] { "--child", "spin", "--mode", ((int)limit.TotalSeconds).ToString(CultureInfo.InvariantCulture) }) start.ArgumentList.Add(a);
        var process = Process.Start(start)!;
        process.StandardOutput.ReadLine();     // "spinning": the neighbour is busy before the first round
        return process;
    }

    /// <summary>In the child: spin one thread for the given seconds.</summary>
    public static int Spin(string seconds)
    {
        var clock = Stopwatch.StartNew();
        var limit = TimeSpan.FromSeconds(int.Parse(seconds, CultureInfo.InvariantCulture));
        Console.WriteLine("spinning");
        Console.Out.Flush();
        double sink = 0;
        while (clock.Elapsed < limit)
            for (int i = 0; i < 1_000_000; i++) sink += Math.Sqrt(i);
        return sink > 0 ? 0 : 1;
    }

    /// <summary>The vector-instruction flags that decide libtorch's kernels (from /proc/cpuinfo).</summary>
    private static string CpuFlags()
    {
        if (!File.Exists("/proc/cpuinfo")) return "unknown";
        var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags"))?.Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        string[] wanted = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"];
        return string.Join(' ', wanted.Where(flags.Contains));
    }
}
