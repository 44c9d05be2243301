using System.Diagnostics;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Training;

namespace ForgettingStudy;

/// <summary>Prints progress lines with the elapsed time, synchronously and in order; step-level training lines are thinned.</summary>
internal sealed class ConsoleProgress(Stopwatch clock, string? prefix = null) : IProgress<ForgettingProgress>
{
    public void Report(ForgettingProgress value)
    {
        // Training reports every 20 steps; the epoch summaries are enough here.
        if (value.Stage == "sequence" && value.Message.Contains(" step ") && value.Message.Contains(" loss ")) return;
        Console.WriteLine($"[{clock.Elapsed:mm\\:ss}]{(prefix is null ? "" : $" {prefix}")} {value}");
    }
}

/// <summary>Prints the trainer's epoch summaries.</summary>
internal sealed class ProgressLine(Stopwatch clock, string name) : IProgress<LoraTrainingProgress>
{
    public void Report(LoraTrainingProgress value)
    {
        if (value.IsEpochEnd) Console.WriteLine($"[{clock.Elapsed:mm\\:ss}] [train] {name}: {value}");
    }
}
