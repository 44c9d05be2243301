// RankSweep: sweeps the LoRA rank of the embedded all-MiniLM-L6-v2 on SST-2 (movie-review sentiment) and writes a CSV
// of every trial and a PNG of validation accuracy against trainable parameters, the Pareto front highlighted. With a
// forgetting task (default AG News), each trial is also scored for forgetting: the accuracy a frozen linear probe for
// that task loses when it reads the fine-tuned encoder's features instead of the base encoder's.
//
//   dotnet run --project examples/RankSweep -c Release -- [--data ../shared/data] [--task sst2] [--ranks 1,2,4,8,16,32]
//       [--train-rows 2000] [--validation-rows 600] [--epochs 1] [--max-length 64] [--strategy grid|halving]
//       [--forgetting-task ag_news|none] [--probe-rows 600] [--out artifacts/rank-sweep]
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Sweeps;

var settings = Arguments.Parse(args);
string dataFolder = Path.GetFullPath(settings.Get("data", "../shared/data"));
string task = settings.Get("task", "sst2");
string taskFolder = Path.Combine(dataFolder, task);
if (!File.Exists(Path.Combine(taskFolder, "train.tsv")))
{
    Console.WriteLine($"SKIPPED: no {task} data at {taskFolder} (expected train.tsv and dev.tsv or test.tsv, 'Label<TAB>Text' with a header). " +
                      "Pass --data <folder holding sst2/> to run the sweep.");
    return 0;
}
string validationFile = new[] { "dev.tsv", "test.tsv" }.Select(f => Path.Combine(taskFolder, f)).FirstOrDefault(File.Exists)
    ?? throw new FileNotFoundException($"{taskFolder} has train.tsv but neither dev.tsv nor test.tsv to validate on.");

int[] ranks = settings.Get("ranks", "1,2,4,8,16,32").Split(',').Select(r => int.Parse(r, CultureInfo.InvariantCulture)).ToArray();
int trainRows = settings.GetInt("train-rows", 2000);
int validationRows = settings.GetInt("validation-rows", 600);
int epochs = settings.GetInt("epochs", 1);
int maxLength = settings.GetInt("max-length", 64);
string strategy = settings.Get("strategy", "grid");
string forgettingTask = settings.Get("forgetting-task", "ag_news");
int probeRows = settings.GetInt("probe-rows", 600);
string output = Path.GetFullPath(settings.Get("out", "artifacts/rank-sweep"));
Directory.CreateDirectory(output);

var ml = new MLContext(seed: 1);
// ML.NET's log carries the sweep's trial-by-trial lines.
ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info && e.Source.StartsWith("LoraSweep")) Console.WriteLine($"  {e.RawMessage}"); };

IDataView Load(string path, int rows) =>
    ml.Data.TakeRows(ml.Data.ShuffleRows(ml.Data.LoadFromTextFile<TextRow>(path, separatorChar: '\t', hasHeader: true), seed: 13), rows);
var train = ml.Data.Cache(Load(Path.Combine(taskFolder, "train.tsv"), trainRows));
var validation = ml.Data.Cache(Load(validationFile, validationRows));

Console.WriteLine($"Loading the embedded all-MiniLM-L6-v2 once for all trials.");
using var encoder = PretrainedEncoder.LoadDefault();
ProbeRetentionScorer? probe = null;
string forgettingFile = Path.Combine(dataFolder, forgettingTask, "train.tsv");
if (forgettingTask != "none" && File.Exists(forgettingFile))
{
    var clock = Stopwatch.StartNew();
    probe = ProbeRetentionScorer.Fit(ml, encoder, ml.Data.LoadFromTextFile<TextRow>(forgettingFile, separatorChar: '\t', hasHeader: true),
        maxRows: probeRows, maxSequenceLength: maxLength);
    Console.WriteLine($"Forgetting probe: a linear classifier of {forgettingTask} on the base encoder's features, {probe.TrainRows} rows to train, " +
                      $"{probe.TestRows} to score: base accuracy {probe.BaseAccuracy:P1} ({clock.Elapsed.TotalSeconds:F0} s).");
}
else if (forgettingTask != "none")
{
    Console.WriteLine($"No forgetting task at {forgettingFile}: trials are not scored for forgetting.");
}

var options = new LoraSweepOptions
{
    SearchSpace = LoraSearchSpace.OverRanks(ranks),
    Strategy = strategy == "halving" ? SweepStrategy.SuccessiveHalving : SweepStrategy.Grid,
    Epochs = epochs,
    HalvingMinEpochs = 1,
    HalvingMaxEpochs = Math.Max(epochs, 2),
    BaseOptions = new LoraTextClassificationTrainer.Options
    {
        LabelColumnName = "Label",
        TextColumnName = "Text",
        Encoder = encoder,
        MaxSequenceLength = maxLength,
        BatchSize = 32,
        Seed = 1,
    },
    ForgettingScorer = probe is null ? null : probe.Score,
    Progress = new ConsoleProgress(),
};

Console.WriteLine($"Sweeping {options.SearchSpace} on {task}: {trainRows} training rows, {validationRows} validation rows from " +
                  $"{Path.GetFileName(validationFile)}, {epochs} epoch(s), max length {maxLength}, {Environment.ProcessorCount} cores.");
using var result = new LoraSweep(ml, options).Run(train, validation);

Console.WriteLine();
Console.WriteLine(result);
string csv = Path.Combine(output, $"{task}-rank-sweep.csv");
string png = Path.Combine(output, $"{task}-rank-sweep.png");
result.SaveCsv(csv);
result.SaveChart(png, title: $"LoRA rank sweep, all-MiniLM-L6-v2 on {task} ({trainRows} rows, {epochs} epoch{(epochs == 1 ? "" : "s")})");
Console.WriteLine($"Best: {result.BestTrial}");
Console.WriteLine($"Pareto front (accuracy vs trainable parameters{(probe is null ? "" : " vs forgetting")}): " +
                  string.Join(", ", result.ParetoFront.Select(t => $"r={t.Settings.Rank}")));
Console.WriteLine($"Wrote {csv} and {png} in {result.Elapsed.TotalMinutes:F1} min.");
probe?.Dispose();
return 0;

/// <summary>A row of the shared datasets: <c>Label&lt;TAB&gt;Text</c>.</summary>
public sealed class TextRow
{
    [LoadColumn(0)] public string Label { get; set; } = "";
    [LoadColumn(1)] public string Text { get; set; } = "";
}

/// <summary>Prints each trial's start, epoch ends and result.</summary>
internal sealed class ConsoleProgress : IProgress<LoraSweepProgress>
{
    public void Report(LoraSweepProgress value)
    {
        if (value.Training is { IsEpochEnd: false }) return;
        Console.WriteLine(value);
    }
}
