using Microsoft.ML;

namespace MLNet.Lora.Integration;

/// <summary>Reads a row's text (and second text, for pairs) as strings for an <see cref="ITextProbabilityScorer"/>.</summary>
internal sealed class TextColumnReader
{
    private readonly ValueGetter<ReadOnlyMemory<char>> text;
    private readonly ValueGetter<ReadOnlyMemory<char>>? pair;
    private ReadOnlyMemory<char> value;

    public TextColumnReader(DataViewRow row, ITextProbabilityScorer scorer)
    {
        text = row.GetGetter<ReadOnlyMemory<char>>(row.Schema[scorer.TextColumnName]);
        if (scorer.SecondTextColumnName is { } second) pair = row.GetGetter<ReadOnlyMemory<char>>(row.Schema[second]);
    }

    /// <summary>Whether the scorer takes text pairs.</summary>
    public bool HasPair => pair is not null;

    /// <summary>The current row's text and second text (null when the scorer takes single texts).</summary>
    public (string Text, string? Pair) Read()
    {
        text(ref value);
        string first = value.ToString();
        if (pair is null) return (first, null);
        pair(ref value);
        return (first, value.ToString());
    }
}
