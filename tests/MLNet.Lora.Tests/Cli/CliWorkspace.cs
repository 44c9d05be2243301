using System.Diagnostics;
using System.Text;
using MLNet.Lora.Cli;

namespace MLNet.Lora.Tests.Cli;

/// <summary>
/// A folder with a tiny random encoder saved as a Hugging Face folder (the tool's <c>--base-model</c>), small TSV
/// files, and ways to run <c>mlnet-lora</c>: in this process, or as a separate process like a pod would.
/// </summary>
public sealed class CliWorkspace : IDisposable
{
    public CliWorkspace()
    {
        Root = Directory.CreateTempSubdirectory("mlnet-lora-cli-").FullName;
        using (var encoder = TinyEncoders.CreateInFolder(Root)) BaseModel = Path.Combine(Root, "tiny-bert-7");
        Train = WriteTsv("train.tsv", SyntheticData.Sentiment(96, seed: 1));
        Validation = WriteTsv("valid.tsv", SyntheticData.Sentiment(48, seed: 2));
    }

    public string Root { get; }

    public string BaseModel { get; }

    public string Train { get; }

    public string Validation { get; }

    public string NewFolder(string name) => Directory.CreateDirectory(Path.Combine(Root, $"{name}-{Guid.NewGuid():N}")).FullName;

    public string WriteTsv(string name, IEnumerable<TextRow> rows)
    {
        string path = Path.Combine(Root, name);
        File.WriteAllText(path, "Label\tText\n" + string.Concat(rows.Select(r => $"{r.Label}\t{r.Text}\n")));
        return path;
    }

    /// <summary>Runs the tool in this process; returns the exit code and what it wrote to standard output and error.</summary>
    public static async Task<(int Code, string Output, string Error)> RunInProcess(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await CliApp.RunAsync(args, new CliConsole(output, error, interactive: false));
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>Starts the tool as its own process (the build's mlnet-lora.dll, beside the tests), with extra environment variables.</summary>
    public static Process Start(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "mlnet-lora.dll");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (string arg in args) info.ArgumentList.Add(arg);
        foreach (var (name, value) in environment) info.Environment[name] = value;
        return Process.Start(info)!;
    }

    /// <summary>Waits for a started process and returns its exit code and output.</summary>
    public static async Task<(int Code, string Output, string Error)> Finish(Process process)
    {
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output, await error);
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
