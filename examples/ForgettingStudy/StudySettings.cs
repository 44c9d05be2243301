using System.Globalization;

namespace ForgettingStudy;

/// <summary>Command-line settings of the study; every size has a default sized for ~10–15 minutes on two (shared) CPU cores.</summary>
internal sealed record StudySettings
{
    public required string DataFolder { get; init; }
    public required string OutputFolder { get; init; }
    public int TrainRows { get; init; } = 1000;
    public int TestRows { get; init; } = 400;
    public int SequenceEpochs { get; init; } = 1;
    public int MonitorRows { get; init; } = 400;
    public int MonitorEpochs { get; init; } = 5;
    public int MaxSequenceLength { get; init; } = 64;
    public int Threads { get; init; } = 1;
    public bool Sequences { get; init; } = true;
    public bool Timeline { get; init; } = true;
    public string? RenderFrom { get; init; }
    public double MonitorFullRate { get; init; } = 3e-5;
    public double MonitorLoraRate { get; init; } = 5e-4;

    public const string Usage = """
        dotnet run --project examples/ForgettingStudy -c Release -- [options]
          --data <folder>          datasets (default ../shared/data beside the repository)
          --out <folder>           report, table and charts (default artifacts/forgetting-study)
          --train-rows <n>         training rows per task in the sequences (1000)
          --test-rows <n>          test rows per task (400)
          --epochs <n>             epochs per task in the sequences (1)
          --monitor-rows <n>       ag_news rows of the monitored fine-tunes (400)
          --monitor-epochs <n>     epochs of the monitored fine-tunes (5)
          --monitor-full-rate <r>  learning rate of the monitored full fine-tune (3e-5)
          --monitor-lora-rate <r>  learning rate of the monitored LoRA fine-tune (5e-4)
          --max-length <n>         tokens per text (64)
          --threads <n>            torch threads (1: on a shared machine OpenMP's spinning threads
                                   make 2 slower; use 2+ on an idle one)
          --no-sequences | --no-timeline   skip a part
          --render <report.json>   redraw the table and charts of a saved report (no training)
        """;

    public static StudySettings Parse(string[] args, string repositoryRoot)
    {
        var settings = new StudySettings
        {
            DataFolder = Path.GetFullPath(Path.Combine(repositoryRoot, "..", "shared", "data")),
            OutputFolder = Path.Combine(repositoryRoot, "artifacts", "forgetting-study"),
        };
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.\n{Usage}");
            int Number() => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0
                ? n : throw new ArgumentException($"{args[i - 1]} needs a positive whole number.\n{Usage}");
            double Rate() => double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out double r) && r > 0 && double.IsFinite(r)
                ? r : throw new ArgumentException($"{args[i - 1]} needs a positive number.\n{Usage}");
            settings = args[i] switch
            {
                "--data" => settings with { DataFolder = Path.GetFullPath(Value()) },
                "--out" => settings with { OutputFolder = Path.GetFullPath(Value()) },
                "--train-rows" => settings with { TrainRows = Number() },
                "--test-rows" => settings with { TestRows = Number() },
                "--epochs" => settings with { SequenceEpochs = Number() },
                "--monitor-rows" => settings with { MonitorRows = Number() },
                "--monitor-epochs" => settings with { MonitorEpochs = Number() },
                "--max-length" => settings with { MaxSequenceLength = Number() },
                "--monitor-full-rate" => settings with { MonitorFullRate = Rate() },
                "--monitor-lora-rate" => settings with { MonitorLoraRate = Rate() },
                "--threads" => settings with { Threads = Number() },
                "--no-sequences" => settings with { Sequences = false },
                "--no-timeline" => settings with { Timeline = false },
                "--render" => settings with { RenderFrom = Path.GetFullPath(Value()) },
                "--help" or "-h" => throw new OperationCanceledException(Usage),
                _ => throw new ArgumentException($"Unknown option '{args[i]}'.\n{Usage}"),
            };
        }
        return settings;
    }
}
