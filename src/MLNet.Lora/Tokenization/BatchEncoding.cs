using static TorchSharp.torch;

namespace MLNet.Lora.Tokenization;

/// <summary>Padded tensor batches from a <see cref="BertTextTokenizer"/> (the tokenizer itself is TorchSharp-free).</summary>
public static class BatchEncoding
{
    /// <summary>Encodes texts (and optional pairs) and pads them to the longest of the batch.</summary>
    /// <example>
    /// <code>
    /// using var scope = torch.NewDisposeScope();
    /// TokenBatch batch = tokenizer.EncodeBatch(["a short one", "and a somewhat longer one"], maxLength: 128);
    /// </code>
    /// </example>
    public static TokenBatch EncodeBatch(this BertTextTokenizer tokenizer, IReadOnlyList<string?> texts, IReadOnlyList<string?>? pairs = null,
        int maxLength = 128, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(texts);
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException($"{nameof(pairs)} has {pairs.Count} items but {nameof(texts)} has {texts.Count}.", nameof(pairs));
        var encoded = new EncodedText[texts.Count];
        for (int i = 0; i < encoded.Length; i++) encoded[i] = tokenizer.Encode(texts[i], pairs?[i], maxLength);
        return TokenBatch.Collate(encoded, tokenizer.PadTokenId, device);
    }
}
