using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Forgetting;

namespace ForgettingStudy;

/// <summary>A row of the shared datasets: Label&lt;TAB&gt;Text with a header line.</summary>
public sealed class TsvRow
{
    [LoadColumn(0)] public string Label { get; set; } = "";
    [LoadColumn(1)] public string Text { get; set; } = "";
}

/// <summary>Reads the shared datasets as forgetting tasks; the evaluator subsamples them (seeded).</summary>
internal sealed class StudyData(MLContext ml, string folder)
{
    /// <summary>The files the study reads, relative to the data folder.</summary>
    public static readonly string[] RequiredFiles =
    [
        "sst2/train.tsv", "sst2/dev.tsv", "ag_news/train.tsv", "ag_news/test.tsv", "emotion/train.tsv", "emotion/test.tsv",
        "banking77/train.tsv", "banking77/test.tsv", "sms_spam/all.tsv",
    ];

    public IEnumerable<string> Missing() => RequiredFiles.Where(f => !File.Exists(Path.Combine(folder, f)));

    public IDataView Load(string relativePath) =>
        // Texts contain quotes and commas but no tabs (the README says tabs were replaced): no quoting.
        ml.Data.LoadFromTextFile<TsvRow>(Path.Combine(folder, relativePath), separatorChar: '\t', hasHeader: true, allowQuoting: false);

    /// <summary>A task with its own train and test files.</summary>
    public ForgettingTask Task(string name, string train, string test) => new(name, Load($"{name}/{train}"), Load($"{name}/{test}"));

    /// <summary>A task from a single file; the evaluator holds out a seeded share for testing.</summary>
    public ForgettingTask Unsplit(string name, string file) => new(name, Load($"{name}/{file}"));

    /// <summary>
    /// A task of the sequence study by name. sst2 is tested on its 1,821-row test split (its dev split has 872);
    /// sms_spam, which has no split, on a seeded 30 % of its rows (about 1,670).
    /// </summary>
    public ForgettingTask ByName(string name)
    {
        if (name != "sms_spam") return Task(name, "train.tsv", "test.tsv");
        var split = ml.Data.TrainTestSplit(Load($"{name}/all.tsv"), testFraction: 0.3, seed: 13);
        return new ForgettingTask(name, split.TrainSet, split.TestSet);
    }

    /// <summary>At most <paramref name="rows"/> rows drawn by a seeded shuffle.</summary>
    public IDataView Sample(IDataView data, int rows, int seed) => ml.Data.TakeRows(ml.Data.ShuffleRows(data, seed: seed, shufflePoolSize: 100_000), rows);
}
