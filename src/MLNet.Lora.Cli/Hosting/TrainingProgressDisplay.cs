using System.Globalization;
using MLNet.Lora.Training;
using Spectre.Console;

namespace MLNet.Lora.Cli;

/// <summary>
/// Shows a fit's progress: a live bar (epoch, step, loss, throughput, time left) on a terminal, or a line per report
/// in a log. Reports arrive on the training thread, in order.
/// </summary>
internal static class TrainingProgressDisplay
{
    /// <summary>Runs <paramref name="train"/> with a progress sink wired to the display.</summary>
    public static T Run<T>(CliConsole console, string title, Func<IProgress<LoraTrainingProgress>, T> train)
    {
        if (!console.Interactive)
            return train(new InlineProgress<LoraTrainingProgress>(p => console.Line(Describe(p))));

        T result = default!;
        console.Ansi.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(title), maxValue: 1);
                result = train(new InlineProgress<LoraTrainingProgress>(p =>
                {
                    task.MaxValue = Math.Max(1, p.TotalSteps);
                    task.Value = p.Step;
                    task.Description = Markup.Escape(Describe(p));
                }));
                task.Value = task.MaxValue;
            });
        return result;
    }

    public static string Describe(LoraTrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"epoch {p.Epoch}/{p.MaxEpochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} {p.ExamplesPerSecond:F1} ex/s ~{p.TimeRemaining:hh\\:mm\\:ss} left") +
        (p.IsEpochEnd ? " (epoch end" + (p.ValidationAccuracy is { } a ? string.Create(CultureInfo.InvariantCulture, $", validation accuracy {a:F4}") : "") + ")" : "");
}
