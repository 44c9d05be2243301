using System.CommandLine;
using MLNet.Lora.Cli.Commands;
using MLNet.Lora.Native;

namespace MLNet.Lora.Cli;

/// <summary>The <c>mlnet-lora</c> command tree, and how every command runs: threads first, user errors as one line.</summary>
internal static class CliApp
{
    /// <summary>
    /// Exit codes: 0 done, 1 a user or data error (one line on standard error), 2 bad arguments, 3 an unexpected error
    /// (the whole exception on standard error; a retry may help), 130 cancelled (Ctrl+C). A batch system can fail a
    /// shard at once on 1 and 2 and retry it on anything else (see examples/kubernetes).
    /// </summary>
    public const int Failed = 1, BadArguments = 2, Unexpected = 3, Cancelled = 130;

    public static RootCommand Build(CliConsole console)
    {
        var threads = CommonOptions.Threads();
        var root = new RootCommand("mlnet-lora: LoRA fine-tuning of BERT-family encoders for ML.NET, from the command line.")
        {
            threads,
            TrainCommand.Create(console, threads),
            EvaluateCommand.Create(console, threads),
            PredictCommand.Create(console, threads),
            ExportCommand.Create(console),
            ForgettingCommand.Create(console, threads),
            SweepCommand.Create(console, threads),
        };
        return root;
    }

    public static Task<int> RunAsync(string[] args, CliConsole? console = null, CancellationToken cancellationToken = default)
    {
        console ??= CliConsole.System();
        var parse = Build(console).Parse(args);
        var configuration = new InvocationConfiguration
        {
            Output = console.Output,
            Error = console.Error,
            // Ctrl+C cancels the command's token; training stops at its next step and the command cleans up.
            ProcessTerminationTimeout = TimeSpan.FromSeconds(60),
        };
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) console.Error.WriteLine($"error: {error.Message}");
            console.Error.WriteLine($"Run 'mlnet-lora {string.Join(' ', CommandPath(parse))} --help' for the options.");
            return Task.FromResult(BadArguments);
        }
        return parse.InvokeAsync(configuration, cancellationToken);
    }

    /// <summary>Runs a command's body: for a command that uses torch (<paramref name="threads"/> given) applies <c>--threads</c> and prints what torch uses, then turns errors into exit codes.</summary>
    public static async Task<int> Run(CliConsole console, ParseResult parse, Option<int?>? threads, Func<CancellationToken, Task<int>> body, CancellationToken cancellationToken)
    {
        try
        {
            if (threads is not null)
            {
                if (parse.GetValue(threads) is { } count) TorchRuntime.IntraOpThreads = count;
                console.Note(TorchRuntime.Threads.ToString());
            }
            return await body(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            console.Note("Cancelled; nothing was written.");
            return Cancelled;
        }
        catch (Exception e) when (IsUserError(e))
        {
            console.Note($"error: {e.Message}");
            return Failed;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            console.Note($"unexpected error: {e}");
            return Unexpected;
        }
    }

    private static bool IsUserError(Exception e) => e is CliException or ArgumentException or InvalidDataException or FileNotFoundException
        or DirectoryNotFoundException or InvalidOperationException or FormatException or UnauthorizedAccessException or NotSupportedException;

    private static IEnumerable<string> CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var result = parse.CommandResult; result.Parent is System.CommandLine.Parsing.CommandResult parent; result = parent)
            names.Insert(0, result.Command.Name);
        return names;
    }
}
