namespace MLNet.Lora.Tokenization;

/// <summary>
/// Encoded texts laid out as the row-major int64 arrays a BERT model takes, padded to the longest item (or to
/// <c>padToLength</c>): ids with the padding id, attention mask 1 on tokens and 0 on padding, segment ids.
/// </summary>
/// <param name="InputIds">[Batch × Sequence] token ids.</param>
/// <param name="AttentionMask">[Batch × Sequence] 1 for tokens, 0 for padding.</param>
/// <param name="TokenTypeIds">[Batch × Sequence] segment ids.</param>
/// <param name="Batch">Number of items.</param>
/// <param name="Sequence">Padded length.</param>
internal sealed record PaddedIds(long[] InputIds, long[] AttentionMask, long[] TokenTypeIds, int Batch, int Sequence)
{
    public static PaddedIds Pad(IReadOnlyList<EncodedText> items, int padTokenId, int? padToLength = null)
    {
        if (items.Count == 0) throw new ArgumentException("A batch needs at least one item.", nameof(items));
        int batch = items.Count;
        int seq = Math.Max(items.Max(i => i.Length), padToLength ?? 0);
        var ids = new long[batch * seq];
        var mask = new long[batch * seq];
        var types = new long[batch * seq];
        Array.Fill(ids, padTokenId);
        for (int b = 0; b < batch; b++)
        {
            var item = items[b];
            int row = b * seq;
            for (int t = 0; t < item.Length; t++)
            {
                ids[row + t] = item.InputIds[t];
                types[row + t] = item.TokenTypeIds[t];
                mask[row + t] = 1;
            }
        }
        return new PaddedIds(ids, mask, types, batch, seq);
    }
}
