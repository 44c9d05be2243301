using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MLNet.Lora.Benchmarks;

/// <summary>
/// The clock contenders are timed with: wall time (the default, what a user waits), or this process's CPU time
/// (<c>--clock cpu</c>: with <c>--threads 1</c> it ignores time slices lost to other jobs on a shared machine).
/// </summary>
internal static partial class Clock
{
    public static bool UseCpuTime { get; set; }

    /// <summary>Seconds on the chosen clock, from an arbitrary origin.</summary>
    public static double Now()
    {
        return UseCpuTime ? ProcessCpuSeconds() : Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
    }

    /// <summary>CPU seconds this process has used, all threads together.</summary>
    public static double ProcessCpuSeconds()
    {
        clock_gettime(2 /* CLOCK_PROCESS_CPUTIME_ID */, out var t);
        return t.Seconds + t.Nanoseconds * 1e-9;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int clock_gettime(int clock, out TimeSpec time);
}

/// <summary>Something timed: <see cref="Run"/> does the work once and returns its own duration in seconds (so it can leave setup out).</summary>
internal sealed record Contender(string Name, Func<double> Run)
{
    /// <summary>A contender whose whole action is timed.</summary>
    public static Contender Timed(string name, Action action) => new(name, () =>
    {
        double start = Clock.Now();
        action();
        return Clock.Now() - start;
    });
}

/// <summary>Min, median and max of a set of samples.</summary>
internal readonly record struct Spread(double Min, double Median, double Max)
{
    public static Spread Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return new Spread(double.NaN, double.NaN, double.NaN);
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        return new Spread(sorted[0], median, sorted[^1]);
    }

    /// <summary>The spread of <paramref name="f"/> applied to each sample (monotone decreasing functions swap min and max).</summary>
    public Spread Map(Func<double, double> f)
    {
        double a = f(Min), b = f(Max);
        return new Spread(Math.Min(a, b), f(Median), Math.Max(a, b));
    }

    public string Format(string format) => $"{Min.ToString(format)} / {Median.ToString(format)} / {Max.ToString(format)}";
}

/// <summary>
/// Runs contenders in one process, alternating them round by round (the starting contender rotates) so that a noisy
/// neighbour slows them all alike; ratios are taken within a round, then summarised.
/// </summary>
internal sealed class Alternation
{
    private readonly Dictionary<string, List<double>> samples = new();
    private readonly List<string> order = new();

    public Alternation(IReadOnlyList<Contender> contenders, int rounds, int warmup = 1, Action<string>? log = null)
    {
        foreach (var c in contenders)
        {
            samples[c.Name] = new List<double>();
            order.Add(c.Name);
        }
        for (int w = 0; w < warmup; w++)
            foreach (var c in contenders) c.Run();
        for (int r = 0; r < rounds; r++)
        {
            for (int k = 0; k < contenders.Count; k++)
            {
                var c = contenders[(r + k) % contenders.Count];
                samples[c.Name].Add(c.Run());
                Cleanup();
            }
            log?.Invoke($"    round {r + 1}/{rounds}: " + string.Join(", ", contenders.Select(c => $"{c.Name} {samples[c.Name][^1]:F3}s")));
        }
    }

    public IReadOnlyList<double> this[string name] => samples[name];

    /// <summary>The contenders' names, in the order given.</summary>
    public IReadOnlyList<string> Names => order;

    public Spread Seconds(string name) => Spread.Of(samples[name]);

    /// <summary>Per-round ratio of <paramref name="numerator"/>'s time to <paramref name="denominator"/>'s.</summary>
    public Spread Ratio(string numerator, string denominator) =>
        Spread.Of(samples[numerator].Zip(samples[denominator], (a, b) => a / b));

    /// <summary>Per-round ratio of <paramref name="numerator"/>'s time to <paramref name="denominator"/>'s, each divided by a work amount first.</summary>
    public Spread RateRatio(string numerator, double numeratorWork, string denominator, double denominatorWork) =>
        Spread.Of(samples[numerator].Zip(samples[denominator], (a, b) => (numeratorWork / a) / (denominatorWork / b)));

    /// <summary>Releases what a contender left behind so the next one starts clean.</summary>
    public static void Cleanup()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }
}
