using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Benchmarks;

/// <summary>Section 2: peak resident memory of a training step, each contender in its own child process.</summary>
internal static partial class Sections
{
    private static void Memory(BenchmarkContext ctx)
    {
        var r = ctx.Report;
        r.Section("2. Peak memory (process RSS) of training steps on 32x128, each contender in a fresh child process");
        // "+ckpt": with GradientCheckpointing; "+attn0": with AttentionDropout = 0.
        string[] modes = ["Lora", "Full", "Forward", "Lora+attn0", "Lora+ckpt", "Full+ckpt"];
        var peaks = modes.ToDictionary(m => m, _ => new List<double>());
        var before = modes.ToDictionary(m => m, _ => new List<double>());
        int rounds = ctx.Options.Quick ? 2 : 3;
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < modes.Length; k++)
            {
                string mode = modes[(round + k) % modes.Length];
                var (peak, baseline, resetWorked) = ChildProcess.Measure(mode, ctx.Options);
                peaks[mode].Add(peak);
                before[mode].Add(baseline);
                if (!resetWorked) Report.Line("(could not reset the peak counter: the figure includes loading)");
            }
            ctx.Log($"    round {round + 1}/{rounds}: " + string.Join(", ", modes.Select(m => $"{m} {peaks[m][^1]:F0} MiB")));
        }
        r.Figure("RSS before the first step (model loaded), LoRA", Spread.Of(before["Lora"]), "MiB", "F0");
        r.Figure("peak RSS, no-grad forward only (reference)", Spread.Of(peaks["Forward"]), "MiB", "F0");
        r.Figure("peak RSS, LoRA r8 training (3 steps)", Spread.Of(peaks["Lora"]), "MiB", "F0");
        r.Figure("peak RSS, full fine-tuning (3 steps)", Spread.Of(peaks["Full"]), "MiB", "F0");
        r.Figure("growth over the loaded model, LoRA", Spread.Of(peaks["Lora"].Zip(before["Lora"], (p, b) => p - b)), "MiB", "F0");
        r.Figure("growth over the loaded model, full", Spread.Of(peaks["Full"].Zip(before["Full"], (p, b) => p - b)), "MiB", "F0");
        r.Target("LoRA peak RSS / full fine-tuning peak RSS", Spread.Of(peaks["Lora"].Zip(peaks["Full"], (a, b) => a / b)), "x", "<=", 0.70);
        r.Figure("peak RSS, LoRA with AttentionDropout = 0", Spread.Of(peaks["Lora+attn0"]), "MiB", "F0");
        r.Figure("peak RSS, LoRA with GradientCheckpointing", Spread.Of(peaks["Lora+ckpt"]), "MiB", "F0");
        r.Figure("peak RSS, full fine-tuning with GradientCheckpointing", Spread.Of(peaks["Full+ckpt"]), "MiB", "F0");
        r.Figure("LoRA with GradientCheckpointing / full fine-tuning (defaults)", Spread.Of(peaks["Lora+ckpt"].Zip(peaks["Full"], (a, b) => a / b)), "x");
        r.Figure("LoRA / full, both with GradientCheckpointing", Spread.Of(peaks["Lora+ckpt"].Zip(peaks["Full+ckpt"], (a, b) => a / b)), "x");
    }
}

/// <summary>Runs one memory contender in a child process of this same program and reads its figures back.</summary>
internal static class ChildProcess
{
    private const string Marker = "MEMORY-RESULT";

    public static (double PeakMiB, double BeforeMiB, bool ResetWorked) Measure(string mode, BenchmarkOptions options)
    {
        var parts = Launch("memory", mode, Marker, options).Split(' ');
        return (double.Parse(parts[1], CultureInfo.InvariantCulture), double.Parse(parts[2], CultureInfo.InvariantCulture), parts[3] == "reset");
    }

    /// <summary>Runs this program as child <paramref name="child"/> in <paramref name="mode"/> and returns its line that starts with <paramref name="marker"/>.</summary>
    public static string Launch(string child, string mode, string marker, BenchmarkOptions options, params string[] extra)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("Cannot find this program's path.");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        foreach (var a in new[] { "--child", child, "--mode", mode }.Concat(extra)) start.ArgumentList.Add(a);
        if (options.Threads is { } t) { start.ArgumentList.Add("--threads"); start.ArgumentList.Add(t.ToString(CultureInfo.InvariantCulture)); }
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith(marker));
        if (process.ExitCode != 0 || line is null)
            throw new InvalidOperationException($"The {mode} {child} child failed (exit {process.ExitCode}): {stdout} {stderr.Result}");
        return line;
    }

    /// <summary>In the child: load, build, reset the peak counter, run three steps, print the peak.</summary>
    public static int Run(string child, BenchmarkOptions options)
    {
        if (child != "memory") throw new ArgumentException($"Unknown child '{child}'.");
        using var w = Workload.Load();
        var batch = w.RandomBatch();
        var labels = Workload.RandomLabels(Workload.Batch, 2);
        string childMode = options.ChildMode ?? "";
        var mode = childMode.Split('+')[0] switch
        {
            "Lora" => FineTuningMode.Lora,
            "Full" => FineTuningMode.Full,
            _ => FineTuningMode.HeadOnly,
        };
        // The loaded encoder itself is adapted (no copy), as when Fit loads the default encoder.
        using var runner = new StepRunner(w, mode, attentionDropout: childMode.EndsWith("+attn0") ? 0 : null,
            checkpointing: childMode.EndsWith("+ckpt"), copy: false);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        double beforeMiB = Status("VmRSS");
        bool reset = ResetPeak();
        if (childMode == "Forward")
        {
            runner.Model.eval();
            for (int i = 0; i < 3; i++)
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                runner.Model.forward(batch);
            }
        }
        else
        {
            for (int i = 0; i < 3; i++) runner.Step(batch, labels);
        }
        double peak = Status("VmHWM");
        Console.WriteLine(FormattableString.Invariant($"{Marker} {peak:F1} {beforeMiB:F1} {(reset ? "reset" : "noreset")}"));
        return 0;
    }

    /// <summary>Resets the kernel's peak-RSS counter (VmHWM) of this process: writing 5 to clear_refs.</summary>
    private static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>A memory line of /proc/self/status, in MiB.</summary>
    internal static double Status(string key)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(key + ":"));
        return double.Parse(line.Split(':')[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
    }
}
