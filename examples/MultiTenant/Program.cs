// MultiTenant: one frozen all-MiniLM-L6-v2 serving three classifiers at once. Trains three small LoRA adapters on
// different tasks (SST-2 sentiment, AG News topics, emotions), serves two from one LoraAdapterSet, scores a stream in
// which every row names its adapter (rows of different adapters share each forward pass), then adds the third adapter
// and removes one while two threads keep scoring.
//
//   dotnet run --project examples/MultiTenant -c Release -- [--data ../shared/data] [--train-rows 400] [--stream-rows 300]
//       [--max-length 64] [--out artifacts/multi-tenant]
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora;
using MLNet.Lora.Checkpoints;

var settings = Arguments.Parse(args);
string dataFolder = Path.GetFullPath(settings.Get("data", "../shared/data"));
string[] tasks = ["sst2", "ag_news", "emotion"];
var missing = tasks.Where(t => !File.Exists(Path.Combine(dataFolder, t, "train.tsv")) || !File.Exists(Path.Combine(dataFolder, t, "test.tsv"))).ToList();
if (missing.Count > 0)
{
    Console.WriteLine($"SKIPPED: no data for {string.Join(", ", missing)} under {dataFolder} (expected <task>/train.tsv and <task>/test.tsv, " +
                      "'Label<TAB>Text' with a header). Pass --data <folder holding sst2/, ag_news/ and emotion/> to run the example.");
    return 0;
}
int trainRows = settings.GetInt("train-rows", 400);
int streamRows = settings.GetInt("stream-rows", 300);
int maxLength = settings.GetInt("max-length", 64);
string output = Path.GetFullPath(settings.Get("out", "artifacts/multi-tenant"));
Directory.CreateDirectory(output);

var ml = new MLContext(seed: 1);
Console.WriteLine("Loading the embedded all-MiniLM-L6-v2 once for the three fits and the set.");
using var encoder = PretrainedEncoder.LoadDefault();

List<TextRow> Read(string task, string split, int rows, int seed)
{
    var all = File.ReadLines(Path.Combine(dataFolder, task, split + ".tsv")).Skip(1)
        .Select(l => l.Split('\t', 2)).Where(p => p.Length == 2).Select(p => new TextRow { Label = p[0], Text = p[1] }).ToList();
    var random = new Random(seed);
    return all.OrderBy(_ => random.Next()).Take(rows).ToList();
}

// 1. One small adapter per task, each saved as an adapter-only zip (a few hundred KB; the base is not in it).
foreach (var task in tasks)
{
    string path = Path.Combine(output, task + ".zip");
    var watch = Stopwatch.StartNew();
    var train = ml.Data.LoadFromEnumerable(Read(task, "train", trainRows, seed: 1));
    var model = ml.Transforms.Conversion.MapValueToKey("Label")
        .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(new LoraTextClassificationTrainer.Options
        {
            Encoder = encoder,
            Rank = 8,
            MaxEpochs = 1,
            BatchSize = 16,
            MaxSequenceLength = maxLength,
        }))
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
        .Fit(train);
    ml.Model.SaveWithAdapters(model, train.Schema, path);
    Console.WriteLine($"  {task}: trained on {trainRows} rows in {watch.Elapsed.TotalSeconds:F0} s, {new FileInfo(path).Length / 1024.0:F0} KiB");
}

// 2. One set, two adapters, one mixed stream.
using var set = new LoraAdapterSet(ml, encoder);
set.Add("sst2", Path.Combine(output, "sst2.zip"));
set.Add("ag_news", Path.Combine(output, "ag_news.zip"));
var scorer = ml.Transforms.LoraMultiAdapterClassification(set);
var tests = tasks.ToDictionary(t => t, t => Read(t, "test", streamRows, seed: 2));

List<TenantRow> Stream(IReadOnlyList<string> adapters, int seed)
{
    var random = new Random(seed);
    return Enumerable.Range(0, streamRows).Select(i =>
    {
        string adapter = adapters[random.Next(adapters.Count)];
        var row = tests[adapter][i];
        return new TenantRow { Adapter = adapter, Text = row.Text, Label = row.Label };
    }).ToList();
}

void Report(string title, List<TenantRow> stream, double seconds)
{
    var predicted = scorer.Transform(ml.Data.LoadFromEnumerable(stream)).GetColumn<string>("PredictedLabel").ToArray();
    var byAdapter = stream.Select((row, i) => (row, correct: row.Label == predicted[i])).GroupBy(p => p.row.Adapter)
        .Select(g => $"{g.Key} {g.Count(p => p.correct) / (double)g.Count():P0} of {g.Count()}");
    Console.WriteLine($"  {title}: {stream.Count / seconds:F0} rows/s; accuracy {string.Join(", ", byAdapter)}");
}

var first = Stream(set.Names, seed: 3);
var clock = Stopwatch.StartNew();
scorer.Transform(ml.Data.LoadFromEnumerable(first)).GetColumn<float[]>("Score").Count();
Console.WriteLine($"Serving {string.Join(" and ", set.Names)} from one base:");
Report("mixed stream", first, clock.Elapsed.TotalSeconds);

// 3. Two threads keep scoring streams over the adapters the set has when each stream starts, while the third
// adapter is added and one removed; a cursor that started before the removal finishes with the removed adapter.
Console.WriteLine("Adding 'emotion' and removing 'ag_news' while two threads score:");
// A stream may be built just before the removal and open its cursor just after: such rows fall back to 'sst2'
// (opt-in; without a fallback they are an error naming the adapter and the set's adapters).
var workerScorer = ml.Transforms.LoraMultiAdapterClassification(set, fallbackAdapterName: "sst2");
int rounds = 0, rows = 0;
using var stop = new CancellationTokenSource();
var workers = Enumerable.Range(0, 2).Select(w => Task.Run(() =>
{
    for (int round = 0; !stop.IsCancellationRequested; round++)
    {
        var stream = Stream(set.Names, seed: 10 * w + round);
        int scored = workerScorer.Transform(ml.Data.LoadFromEnumerable(stream)).GetColumn<string>("PredictedLabel").Count();
        Interlocked.Increment(ref rounds);
        Interlocked.Add(ref rows, scored);
    }
})).ToArray();
Thread.Sleep(500);
set.Add("emotion", Path.Combine(output, "emotion.zip"));
Console.WriteLine($"  added 'emotion': the set serves {string.Join(", ", set.Names)}");
Thread.Sleep(1000);
set.Remove("ag_news");
Console.WriteLine($"  removed 'ag_news': the set serves {string.Join(", ", set.Names)}");
Thread.Sleep(1000);
stop.Cancel();
Task.WaitAll(workers);
Console.WriteLine($"  the threads scored {rows} rows in {rounds} streams without an error");

var last = Stream(set.Names, seed: 4);
clock.Restart();
scorer.Transform(ml.Data.LoadFromEnumerable(last)).GetColumn<float[]>("Score").Count();
Report("mixed stream after the changes", last, clock.Elapsed.TotalSeconds);
var unknown = () => scorer.Transform(ml.Data.LoadFromEnumerable([new TenantRow { Adapter = "ag_news", Text = "Stocks rallied." }])).GetColumn<string>("PredictedLabel").ToArray();
try
{
    unknown();
}
catch (KeyNotFoundException e)
{
    Console.WriteLine($"  a row for the removed adapter: {e.Message}");
}
Console.WriteLine($"Cache: {set.Statistics}");
return 0;

/// <summary>A labelled text.</summary>
internal sealed class TextRow
{
    public string Label { get; set; } = "";
    public string Text { get; set; } = "";
}

/// <summary>A request: which adapter, what text (and, here, the true label to report accuracy).</summary>
internal sealed class TenantRow
{
    public string Adapter { get; set; } = "";
    public string Text { get; set; } = "";
    public string Label { get; set; } = "";
}
