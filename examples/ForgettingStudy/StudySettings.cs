using System.Globalization;

namespace ForgettingStudy;

/// <summary>Command-line settings of the study. The defaults are the study in docs/forgetting.md.</summary>
internal sealed record StudySettings
{
    public required string DataFolder { get; init; }
    public required string OutputFolder { get; init; }
    public int[] Seeds { get; init; } = [1, 2, 3];
    public string[] Sequences { get; init; } = [.. StudyPlan.SequenceNames];
    public string[]? Methods { get; init; }
    public int TrainRows { get; init; } = 300;
    public int TestRows { get; init; } = 1000;
    public int Epochs { get; init; } = 1;
    public int MaxSequenceLength { get; init; } = 32;
    public int Workers { get; init; } = 1;
    public int Resamples { get; init; } = 2000;
    public bool Quick { get; init; }
    public string? Job { get; init; }
    public bool Timeline { get; init; }
    /// <summary>
    /// Torch intra-op threads per process: 2 for the study and 1 for --timeline, as the figures in docs/forgetting.md
    /// were measured (full fine-tuning's last bits, and through them a probe's row here and there, depend on it).
    /// </summary>
    public int Threads { get; init; } = 2;
    public int MonitorRows { get; init; } = 400;
    public int MonitorEpochs { get; init; } = 5;
    public double MonitorFullRate { get; init; } = 3e-5;
    public double MonitorLoraRate { get; init; } = 5e-4;
    public string? RenderFrom { get; init; }

    public const string Usage = """
        dotnet run --project examples/ForgettingStudy -c Release -- [options]
          The study: every method of StudyPlan over two task sequences and several seeds, each (sequence, seed) in a
          child process, then mean ± 95 % bootstrap intervals (over test rows and seeds) and paired differences.
          --data <folder>        datasets (default ../shared/data beside the repository)
          --out <folder>         runs, tables and report (default artifacts/forgetting-study)
          --seeds <a,b,...>      seeds (1,2,3)
          --sequences <a,b>      sequences by name (sst2-ag_news-emotion,banking77-sms_spam-emotion)
          --methods <a,b,...>    methods by name (all; see StudyPlan.cs)
          --train-rows <n>       training rows per task (300)
          --test-rows <n>        test rows per task (1000)
          --epochs <n>           epochs per task (1)
          --max-length <n>       tokens per text (32)
          --threads <n>          torch threads per process (2; 1 with --timeline), as docs/forgetting.md measured
          --workers <n>          child processes at once (processor count / threads)
          --resamples <n>        bootstrap resamples (2000)
          --quick                a CI-sized check: seed 1, one sequence of two tasks, 48 train and 48 test rows,
                                 three methods (minutes)
          --timeline             instead: the earlier study (its sequence with every internal measure, the monitored
                                 fine-tunes and the retention of four tasks; 1000 train and 400 test rows, 64 tokens)
          --render <report.json> redraw the tables and charts of a saved timeline report (no training)
          Finished (sequence, seed) runs are kept in <out>/runs and skipped when the command is run again.
        """;

    public static StudySettings Parse(string[] args, string repositoryRoot)
    {
        var settings = new StudySettings
        {
            DataFolder = Path.GetFullPath(Path.Combine(repositoryRoot, "..", "shared", "data")),
            OutputFolder = Path.Combine(repositoryRoot, "artifacts", "forgetting-study"),
        };
        var given = new HashSet<string>(args.Where(a => a.StartsWith("--", StringComparison.Ordinal)));
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.\n{Usage}");
            int Number() => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0
                ? n : throw new ArgumentException($"{args[i - 1]} needs a positive whole number.\n{Usage}");
            double Rate() => double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out double r) && r > 0 && double.IsFinite(r)
                ? r : throw new ArgumentException($"{args[i - 1]} needs a positive number.\n{Usage}");
            string[] List() => Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            settings = args[i] switch
            {
                "--data" => settings with { DataFolder = Path.GetFullPath(Value()) },
                "--out" => settings with { OutputFolder = Path.GetFullPath(Value()) },
                "--seeds" => settings with { Seeds = List().Select(s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 0 ? n
                    : throw new ArgumentException($"--seeds needs whole numbers ≥ 0; got '{s}'.")).ToArray() },
                "--sequences" => settings with { Sequences = List() },
                "--methods" => settings with { Methods = List() },
                "--train-rows" => settings with { TrainRows = Number() },
                "--test-rows" => settings with { TestRows = Number() },
                "--epochs" => settings with { Epochs = Number() },
                "--max-length" => settings with { MaxSequenceLength = Number() },
                "--workers" => settings with { Workers = Number() },
                "--resamples" => settings with { Resamples = Number() },
                "--quick" => settings with { Quick = true },
                "--job" => settings with { Job = Value() },
                "--timeline" => settings with { Timeline = true },
                "--threads" => settings with { Threads = Number() },
                "--monitor-rows" => settings with { MonitorRows = Number() },
                "--monitor-epochs" => settings with { MonitorEpochs = Number() },
                "--monitor-full-rate" => settings with { MonitorFullRate = Rate() },
                "--monitor-lora-rate" => settings with { MonitorLoraRate = Rate() },
                "--render" => settings with { RenderFrom = Path.GetFullPath(Value()) },
                "--help" or "-h" => throw new OperationCanceledException(Usage),
                _ => throw new ArgumentException($"Unknown option '{args[i]}'.\n{Usage}"),
            };
        }
        // The earlier study keeps its own sizes and thread count unless they are given.
        if (settings.Timeline)
            settings = settings with
            {
                Threads = given.Contains("--threads") ? settings.Threads : 1,
                TrainRows = given.Contains("--train-rows") ? settings.TrainRows : 1000,
                TestRows = given.Contains("--test-rows") ? settings.TestRows : 400,
                MaxSequenceLength = given.Contains("--max-length") ? settings.MaxSequenceLength : 64,
            };
        if (!given.Contains("--workers"))
            settings = settings with { Workers = Math.Max(1, Environment.ProcessorCount / settings.Threads) };
        if (settings.Quick)
            settings = settings with
            {
                Seeds = [settings.Seeds[0]], Sequences = [StudyPlan.QuickSequence], TrainRows = 48, TestRows = 48, Resamples = 200,
                Methods = settings.Methods ?? ["shared LoRA", "shared LoRA + rehearsal 30%", "O-LoRA"],
                OutputFolder = settings.OutputFolder + "-quick",
            };
        foreach (var name in settings.Sequences)
            if (!StudyPlan.IsSequence(name)) throw new ArgumentException($"Unknown sequence '{name}'. Known: {string.Join(", ", StudyPlan.SequenceNames.Append(StudyPlan.QuickSequence))}.");
        foreach (var name in settings.Methods ?? [])
            if (StudyPlan.Methods().All(m => m.Name != name)) throw new ArgumentException($"Unknown method '{name}'. Known: {string.Join(", ", StudyPlan.Methods().Select(m => m.Name))}.");
        return settings;
    }
}
