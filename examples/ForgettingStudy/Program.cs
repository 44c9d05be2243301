// ForgettingStudy: which ways of fine-tuning all-MiniLM-L6-v2 through a sequence of tasks keep the earlier tasks, at
// what cost? Every method of StudyPlan runs over two task sequences from the shared real datasets
// (../shared/data/README.md) and several seeds. Each (sequence, seed) runs in a child process with a fixed number of
// torch threads (the figures depend on it); the parent then reports every figure as mean [95 % interval] by a
// bootstrap over test rows and seeds, and paired differences, and prints the wall and CPU time. --timeline runs the
// earlier monitored study.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Forgetting;
using MLNet.Lora.Native;
using ForgettingStudy;

string root = RepositoryRoot();
StudySettings settings;
try
{
    settings = StudySettings.Parse(args, root);
}
catch (OperationCanceledException help)
{
    Console.WriteLine(help.Message);
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}
if (settings.Timeline || settings.RenderFrom is not null) return TimelineStudy.Run(settings);

var ml = new MLContext(seed: 1);
var data = new StudyData(ml, settings.DataFolder);
var needed = settings.Sequences.SelectMany(StudyPlan.Tasks).Distinct().ToList();
var missing = needed.Where(t => !Directory.Exists(Path.Combine(settings.DataFolder, t))).ToList();
if (missing.Count > 0)
{
    Console.WriteLine($"Skipping the forgetting study: {string.Join(", ", missing)} not found in {settings.DataFolder}.");
    Console.WriteLine("Pass --data <folder> to point at them; see ../shared/data/README.md for the expected layout.");
    return 0;
}
string runs = Path.Combine(settings.OutputFolder, "runs");
var methods = StudyPlan.Methods().Where(m => settings.Methods is null || settings.Methods.Contains(m.Name)).ToList();
// Finished runs are reused only under the settings that made them (a quick check always starts afresh).
string protocol = $"train {settings.TrainRows}, test {settings.TestRows}, epochs {settings.Epochs}, max length {settings.MaxSequenceLength}, torch threads {settings.Threads}, methods {string.Join(" | ", methods.Select(m => m.Name))}";
string protocolFile = Path.Combine(runs, "protocol.txt");
if (settings.Job is null)
{
    if (settings.Quick && Directory.Exists(runs)) Directory.Delete(runs, recursive: true);
    if (File.Exists(protocolFile) && File.ReadAllText(protocolFile) != protocol)
    {
        Console.Error.WriteLine($"The runs in {runs} were made with other settings ({File.ReadAllText(protocolFile)}); pass another --out, or delete the folder to start again.");
        return 2;
    }
    Directory.CreateDirectory(runs);
    File.WriteAllText(protocolFile, protocol);
}
string RunFile(string sequence, int seed) => Path.Combine(runs, $"{sequence}.seed{seed}.json");

if (settings.Job is { } job)
{
    // A child: one sequence and seed, every method; the report and the CPU time go to the run file.
    var (sequence, seed) = (job[..job.LastIndexOf(':')], int.Parse(job[(job.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture));
    TorchRuntime.IntraOpThreads = settings.Threads;   // before the first model loads, which would otherwise pick the core count
    var clock = Stopwatch.StartNew();
    using var encoder = PretrainedEncoder.LoadDefault();
    var evaluator = new ForgettingEvaluator(ml, StudyPlan.Options(settings, seed));
    var tasks = StudyPlan.Tasks(sequence).Select(data.ByName).ToList();
    var report = evaluator.RunSequences(ComparedModel.FromEncoder(encoder, "all-MiniLM-L6-v2"), tasks, methods, new ConsoleProgress(clock, $"{sequence} seed {seed}"));
    report.SaveJson(RunFile(sequence, seed));
    File.WriteAllText(RunFile(sequence, seed) + ".cpu", Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds.ToString("R", CultureInfo.InvariantCulture));
    return 0;
}

var wall = Stopwatch.StartNew();
Console.WriteLine($"Forgetting study: {methods.Count} methods × {settings.Sequences.Length} sequences × seeds {string.Join(",", settings.Seeds)}; " +
                  $"{settings.TrainRows} train and {settings.TestRows} test rows per task; {settings.Workers} child process(es) of {settings.Threads} torch thread(s); output {settings.OutputFolder}");
Console.WriteLine($"CPU: {CpuModel()}");
// Seed by seed, so that a run cut short still has every sequence at the seeds it reached.
var jobs = (from seed in settings.Seeds from sequence in settings.Sequences select (sequence, seed))
    .Where(j => !File.Exists(RunFile(j.sequence, j.seed))).ToList();
Console.WriteLine($"{jobs.Count} run(s) to do; {settings.Sequences.Length * settings.Seeds.Length - jobs.Count} already in {runs}.");
int failed = 0;
await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = settings.Workers }, async (j, token) =>
{
    var childArgs = args.Where(a => a != "--quick").ToList();
    childArgs.AddRange(["--job", $"{j.sequence}:{j.seed}", "--out", settings.OutputFolder, "--train-rows", $"{settings.TrainRows}", "--test-rows", $"{settings.TestRows}",
        "--threads", $"{settings.Threads}"]);
    if (settings.Methods is { } named) childArgs.AddRange(["--methods", string.Join(",", named)]);
    // This program again: its apphost, or `dotnet <dll>` when it was started that way.
    var start = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
    if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(typeof(StudyPlan).Assembly.Location);
    foreach (var a in childArgs) start.ArgumentList.Add(a);
    using var child = Process.Start(start)!;
    await child.WaitForExitAsync(token);
    if (child.ExitCode != 0)
    {
        Interlocked.Increment(ref failed);
        Console.Error.WriteLine($"Run {j.sequence} seed {j.seed} failed with exit code {child.ExitCode}.");
    }
});
if (failed > 0) return 1;

var output = new List<string>
{
    $"Methods × sequences × seeds: {methods.Count} × {settings.Sequences.Length} × {settings.Seeds.Length}; {settings.TrainRows} train and {settings.TestRows} test rows per task, " +
    $"{settings.Epochs} epoch(s), max length {settings.MaxSequenceLength}; figures in points as mean [95 % interval], {settings.Resamples} bootstrap resamples over test rows and seeds.",
};
double cpu = 0;
foreach (var sequence in settings.Sequences)
{
    var reports = settings.Seeds.Select(seed => ForgettingReport.LoadJson(RunFile(sequence, seed))).ToList();
    cpu += settings.Seeds.Sum(seed => double.Parse(File.ReadAllText(RunFile(sequence, seed) + ".cpu"), CultureInfo.InvariantCulture));
    var results = reports.SelectMany(r => r.Sequences).Where(s => methods.Any(m => m.Name == s.Method)).ToList();
    output.Add($"\n### {string.Join(" → ", StudyPlan.Tasks(sequence))}\n");
    output.Add(SequenceSummary.ToMarkdownTable(SequenceSummary.Summarize(results, settings.Resamples)));
    output.Add($"\nPer seed, ACC / forgetting in points:\n");
    output.Add(PerSeedTable(results, settings.Seeds));
    output.Add(BudgetLines(reports));
    if (methods.Count > 1 && methods.Any(m => m.Name == StudyPlan.Reference))
    {
        output.Add($"\nEach method minus {StudyPlan.Reference}, paired by seed and test row:\n");
        output.Add(SequenceSummary.ToMarkdownTable(SequenceSummary.Compare(results, StudyPlan.Reference, settings.Resamples)));
    }
}
string text = string.Join("\n", output) + $"\n\nWall time {wall.Elapsed:hh\\:mm\\:ss} for the runs done now; CPU time of all {settings.Sequences.Length * settings.Seeds.Length} runs {TimeSpan.FromSeconds(cpu):hh\\:mm\\:ss} ({CpuModel()}).\n";
Console.WriteLine(text);
File.WriteAllText(Path.Combine(settings.OutputFolder, "study.md"), text);
Console.WriteLine($"Wrote {Path.Combine(settings.OutputFolder, "study.md")}.");
return 0;

static string PerSeedTable(IReadOnlyList<SequenceResult> results, int[] seeds)
{
    static string Cell(SequenceResult? r) =>
        r is null ? "" : string.Create(CultureInfo.InvariantCulture, $"{100 * r.AverageAccuracy:0.0} / {100 * r.AverageForgetting:0.0}");
    var lines = new List<string>
    {
        "| method | " + string.Join(" | ", seeds.Select(s => $"seed {s}")) + " |",
        "|---|" + string.Concat(seeds.Select(_ => "---:|")),
    };
    lines.AddRange(results.Select(r => r.Method).Distinct().Select(method =>
        $"| {method} | " + string.Join(" | ", seeds.Select(s => Cell(results.FirstOrDefault(r => r.Method == method && r.Seed == s)))) + " |"));
    return string.Join("\n", lines) + "\n";
}

static string BudgetLines(IReadOnlyList<ForgettingReport> reports)
{
    var lines = reports.SelectMany(r => r.Sequences).Where(s => s.Budgets.Any(b => b is not null))
        .Select(s => $"- {s.Method}, seed {s.Seed}: " + string.Join("; ", s.Budgets.Select((b, i) => b is null ? null : $"{s.Tasks[i]} {b}").Where(x => x is not null)));
    return string.Join("\n", lines);
}

static string CpuModel()
{
    try
    {
        var lines = File.ReadAllLines("/proc/cpuinfo");
        string model = lines.FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var flags = (lines.FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(':', 2)[1] ?? "").Split(' ');
        return $"{model}, {Environment.ProcessorCount} cores, {(flags.Contains("avx512f") ? "AVX-512" : flags.Contains("avx2") ? "AVX2" : "no AVX2")}";
    }
    catch (IOException)
    {
        return $"{Environment.ProcessorCount} cores";
    }
}

static string RepositoryRoot()
{
    // The solution file marks the root, from the working directory or from the build output.
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MLNet.Lora.sln"))) return dir.FullName;
    return Directory.GetCurrentDirectory();
}
