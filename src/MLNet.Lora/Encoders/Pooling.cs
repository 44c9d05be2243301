using static TorchSharp.torch;

namespace MLNet.Lora.Encoders;

/// <summary>How a sequence's token states become one vector.</summary>
public enum PoolingStrategy
{
    /// <summary>Mean of the last hidden states over real (non-pad) tokens; what sentence-transformers models such as all-MiniLM-L6-v2 were trained with.</summary>
    Mean,

    /// <summary>The last hidden state of <c>[CLS]</c>.</summary>
    Cls,

    /// <summary>BERT's pooler output (dense + tanh over <c>[CLS]</c>); falls back to <see cref="Cls"/> when the model has no pooler.</summary>
    Pooler,
}

/// <summary>Pools encoder outputs into one vector per sequence.</summary>
public static class Pooling
{
    /// <summary>Mean of <paramref name="hidden"/> [batch, seq, hidden] over positions where <paramref name="attentionMask"/> [batch, seq] is 1.</summary>
    public static Tensor MeanOverTokens(Tensor hidden, Tensor attentionMask)
    {
        Tensor mask = attentionMask.unsqueeze(-1).to(hidden.dtype);          // [batch, seq, 1]
        Tensor counts = mask.sum(1).clamp_min(1);                            // [batch, 1]
        return (hidden * mask).sum(1) / counts;                              // [batch, hidden]
    }

    /// <summary>Pools <paramref name="output"/> with <paramref name="strategy"/>: [batch, hidden].</summary>
    public static Tensor Pool(BertModelOutput output, Tensor attentionMask, PoolingStrategy strategy) => strategy switch
    {
        PoolingStrategy.Mean => MeanOverTokens(output.LastHiddenState, attentionMask),
        PoolingStrategy.Pooler when output.PooledOutput is not null => output.PooledOutput,
        _ => output.LastHiddenState[.., 0],
    };
}
