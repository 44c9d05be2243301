using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Training;

/// <summary>Tokenized examples with 0-based class indices.</summary>
/// <param name="Items">Encoded texts.</param>
/// <param name="Labels">Class index of each item.</param>
internal sealed record LabeledTexts(IReadOnlyList<EncodedText> Items, IReadOnlyList<int> Labels)
{
    /// <summary>Number of examples.</summary>
    public int Count => Items.Count;

    /// <summary>Tokenizes <paramref name="texts"/> (and optional <paramref name="pairs"/>) with their labels.</summary>
    public static LabeledTexts Encode(BertTextTokenizer tokenizer, IReadOnlyList<string?> texts, IReadOnlyList<int> labels,
        int maxSequenceLength, IReadOnlyList<string?>? pairs = null)
    {
        if (labels.Count != texts.Count) throw new ArgumentException($"{labels.Count} labels for {texts.Count} texts.", nameof(labels));
        var items = new EncodedText[texts.Count];
        Parallel.For(0, items.Length, i => items[i] = tokenizer.Encode(texts[i], pairs?[i], maxSequenceLength));
        return new LabeledTexts(items, labels);
    }

    /// <summary>How many items lost tokens to truncation.</summary>
    public int TruncatedCount => Items.Count(i => i.Truncated);

    /// <summary>How many items had invalid UTF-16 replaced by U+FFFD.</summary>
    public int ReplacedInvalidTextCount => Items.Count(i => i.ReplacedInvalidText);
}
