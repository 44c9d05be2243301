namespace MLNet.Lora.Cli.Data;

/// <summary>Labels a model never saw cannot be scored against it: they are refused, named, before any work.</summary>
internal static class LabelCheck
{
    public static void AllKnown(TextDataset data, IReadOnlyCollection<string> classes)
    {
        var known = classes.ToHashSet(StringComparer.Ordinal);
        var unknown = data.Rows.Select((r, i) => (r.Label!, Line: data.Table.RowLines[i])).Where(r => !known.Contains(r.Item1)).ToList();
        if (unknown.Count > 0)
            throw new CliException($"'{data.Table.Path}' has labels the training data does not: " +
                string.Join(", ", unknown.GroupBy(u => u.Item1).Take(5).Select(g => $"'{g.Key}' (line {g.First().Line})")) +
                $". The classes are: {string.Join(", ", classes)}.");
    }
}
