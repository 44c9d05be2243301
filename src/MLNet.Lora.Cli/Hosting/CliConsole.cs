using Spectre.Console;

namespace MLNet.Lora.Cli;

/// <summary>Where a command writes: results to standard output (through Spectre.Console), diagnostics to standard error.</summary>
internal sealed class CliConsole
{
    public CliConsole(TextWriter output, TextWriter error, bool interactive)
    {
        Output = output;
        Error = error;
        Interactive = interactive;
        Ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!interactive) Ansi.Profile.Width = 160;
    }

    public static CliConsole System() => new(Console.Out, Console.Error,
        interactive: !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("CI") is null);

    public IAnsiConsole Ansi { get; }

    public TextWriter Output { get; }

    public TextWriter Error { get; }

    /// <summary>Whether a live progress bar can be drawn (a terminal, not a log).</summary>
    public bool Interactive { get; }

    public void Line(string text) => Output.WriteLine(text);

    public void Note(string text) => Error.WriteLine(text);
}
