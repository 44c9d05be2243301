namespace MLNet.Lora.Tokenization;

/// <summary>One text (or text pair) as model input: <c>[CLS] a [SEP]</c> or <c>[CLS] a [SEP] b [SEP]</c>.</summary>
/// <param name="InputIds">Token ids, special tokens included.</param>
/// <param name="TokenTypeIds">Segment ids: 0 for the first text and its special tokens, 1 for the second.</param>
/// <param name="Truncated">Whether tokens were dropped to fit the maximum length.</param>
public sealed record EncodedText(int[] InputIds, int[] TokenTypeIds, bool Truncated)
{
    /// <summary>Number of tokens, special tokens included.</summary>
    public int Length => InputIds.Length;

    /// <summary>Whether invalid UTF-16 (lone surrogates) in the text was replaced by U+FFFD before tokenizing.</summary>
    public bool ReplacedInvalidText { get; init; }
}
