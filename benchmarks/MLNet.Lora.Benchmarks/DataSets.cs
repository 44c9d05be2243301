namespace MLNet.Lora.Benchmarks;

/// <summary>One labelled text, as ML.NET reads it.</summary>
public sealed class TextRow
{
    /// <summary>Readable label.</summary>
    public string Label { get; set; } = "";

    /// <summary>The text.</summary>
    public string Text { get; set; } = "";
}

/// <summary>The real datasets beside the project (<c>../shared/data</c>): <c>Label&lt;TAB&gt;Text</c> TSV with a header.</summary>
internal static class DataSets
{
    /// <summary>The data folder: the one given, else <c>../shared/data</c> from the repository root found above the working or program folder.</summary>
    public static string Resolve(string? given)
    {
        if (given is not null) return Path.GetFullPath(given);
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "MLNet.Lora.sln")))
                    return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data"));
        }
        return Path.GetFullPath(Path.Combine("..", "shared", "data"));
    }

    public static string? FileOf(string root, string dataset, string split)
    {
        string path = Path.Combine(root, dataset, split + ".tsv");
        return File.Exists(path) ? path : null;
    }

    public static List<TextRow> Read(string path)
    {
        var rows = new List<TextRow>();
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            int tab = line.IndexOf('\t');
            if (tab <= 0) continue;
            rows.Add(new TextRow { Label = line[..tab], Text = line[(tab + 1)..] });
        }
        return rows;
    }

    /// <summary>A seeded random subset of at most <paramref name="count"/> rows (all of them, shuffled, when fewer).</summary>
    public static List<TextRow> Sample(IReadOnlyList<TextRow> rows, int count, int seed)
    {
        var order = Enumerable.Range(0, rows.Count).ToArray();
        new Random(seed).Shuffle(order);
        return order.Take(Math.Min(count, rows.Count)).Select(i => rows[i]).ToList();
    }

    /// <summary>Short English-like sentences of SST-2-like lengths (5 to 40 words), for when the real data is absent.</summary>
    public static List<TextRow> Synthetic(int count, int seed)
    {
        string[] words = ["the", "film", "is", "a", "very", "good", "bad", "story", "with", "and", "of", "acting", "plot", "but", "not",
            "quite", "funny", "boring", "moving", "characters", "director", "its", "an", "that", "this", "movie", "performances", "script"];
        var random = new Random(seed);
        var rows = new List<TextRow>(count);
        for (int i = 0; i < count; i++)
        {
            int length = 5 + (int)(35 * Math.Pow(random.NextDouble(), 2));
            var text = string.Join(' ', Enumerable.Range(0, length).Select(_ => words[random.Next(words.Length)]));
            rows.Add(new TextRow { Label = text.Contains("good") ? "positive" : "negative", Text = text });
        }
        return rows;
    }
}
