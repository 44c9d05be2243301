using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Forgetting;

/// <summary>Runs an encoder over encoded texts in batches and collects what the forgetting measures need.</summary>
internal static class EncoderFeatures
{
    /// <summary>The device the encoder's weights live on.</summary>
    public static Device DeviceOf(nn.Module model) => model.parameters().FirstOrDefault()?.device ?? CPU;

    /// <summary>
    /// Pooled features [n, hidden] (float32, CPU) of every item, in the items' order, without autograd. The tensor is
    /// in the caller's dispose scope.
    /// </summary>
    public static Tensor Pooled(BertModel encoder, int padTokenId, IReadOnlyList<EncodedText> items, PoolingStrategy pooling,
        int batchSize, CancellationToken cancellationToken)
    {
        using var measuring = new MeasurementScope(encoder, unmerge: false);
        using var noGrad = no_grad();
        var device = DeviceOf(encoder);
        var parts = new List<Tensor>();
        var order = new List<int>();
        foreach (var indices in Batches(items, batchSize))
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var batch = TokenBatch.Collate(indices.Select(i => items[i]).ToArray(), padTokenId, device);
            var output = encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
            parts.Add(Pooling.Pool(output, batch.AttentionMask, pooling).to(float32).cpu().MoveToOuterDisposeScope());
            order.AddRange(indices);
        }
        return Reorder(parts, order);
    }

    /// <summary>
    /// Index batches over items sorted by length (little padding), each at most <paramref name="batchSize"/> long.
    /// Deterministic: ties keep their original order.
    /// </summary>
    public static IEnumerable<int[]> Batches(IReadOnlyList<EncodedText> items, int batchSize)
    {
        var sorted = Enumerable.Range(0, items.Count).OrderBy(i => items[i].Length).ToArray();
        for (int start = 0; start < sorted.Length; start += batchSize)
            yield return sorted[start..Math.Min(sorted.Length, start + batchSize)];
    }

    /// <summary>Concatenates per-batch rows and puts row k back at position <paramref name="order"/>[k].</summary>
    public static Tensor Reorder(List<Tensor> parts, List<int> order)
    {
        using var scope = NewDisposeScope();
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        var inverse = new long[order.Count];
        for (int k = 0; k < order.Count; k++) inverse[order[k]] = k;
        return all.index_select(0, tensor(inverse)).MoveToOuterDisposeScope();
    }

    /// <summary>The items of <paramref name="data"/> (encoded texts) at <paramref name="indices"/>, with labels.</summary>
    public static (TokenBatch Batch, Tensor Labels) Collate(LabeledTexts data, IReadOnlyList<int> indices, int padTokenId, Device device)
    {
        var items = indices.Select(i => data.Items[i]).ToArray();
        var labels = indices.Select(i => (long)data.Labels[i]).ToArray();
        return (TokenBatch.Collate(items, padTokenId, device), tensor(labels, device: device));
    }

    /// <summary>
    /// Pooled features with autograd, for losses that are differentiated. Attention is computed explicitly
    /// (<c>outputAttentions</c>) rather than by the fused kernel, because Hessian-vector products need a second
    /// derivative that the explicit softmax path always has.
    /// </summary>
    public static Tensor PooledWithGrad(BertModel encoder, TokenBatch batch, PoolingStrategy pooling)
    {
        var output = encoder.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds, outputAttentions: true);
        return Pooling.Pool(output, batch.AttentionMask, pooling);
    }
}
