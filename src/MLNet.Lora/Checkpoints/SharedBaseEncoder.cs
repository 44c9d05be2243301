using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using static TorchSharp.torch;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// One copy of a base encoder's weights per process, keyed by their SHA-256, shared by every model built over it:
/// ten loaded adapters over the default model hold one 87 MB base, not ten. Models over a frozen base get encoders
/// whose tensors alias these weights (same storage, no copy); libtorch frees the storage with its last user. The
/// registry holds its entries weakly, so a base no model uses any more is reclaimed by the garbage collector.
/// </summary>
internal sealed class SharedBaseEncoder
{
    private static readonly Dictionary<string, WeakReference<SharedBaseEncoder>> Live = new(StringComparer.OrdinalIgnoreCase);
    private readonly BertModel weights;
    private readonly long bytes;

    private SharedBaseEncoder(BertModel weights, BertTextTokenizer tokenizer, EncoderIdentity identity)
    {
        this.weights = weights;
        Tokenizer = tokenizer;
        Identity = identity;
        bytes = weights.parameters().Concat(weights.buffers()).Sum(t => t.numel() * t.ElementSize);
        // The garbage collector sees only this small object; tell it how much native memory hangs on it.
        GC.AddMemoryPressure(bytes);
    }

    ~SharedBaseEncoder()
    {
        weights.Dispose();
        GC.RemoveMemoryPressure(bytes);
    }

    /// <summary>The base's tokenizer.</summary>
    public BertTextTokenizer Tokenizer { get; }

    /// <summary>The base's name, weight hash and source.</summary>
    public EncoderIdentity Identity { get; }

    /// <summary>The base's configuration.</summary>
    public BertConfig Config => weights.Config;

    /// <summary>The live entry for weights of <paramref name="sha256"/>, if some model still uses one.</summary>
    public static SharedBaseEncoder? TryGet(string sha256)
    {
        lock (Live) return Live.TryGetValue(sha256, out var entry) && entry.TryGetTarget(out var shared) ? shared : null;
    }

    /// <summary>
    /// The entry for <paramref name="encoder"/>'s weights: the live one with the same SHA-256, or a new one. A new entry
    /// copies the weights of an encoder the caller keeps (so later changes to it never reach the models over this base),
    /// and takes those of one the caller only loaded to share (<paramref name="loadedToShare"/>: aliased, no copy; the
    /// caller may dispose it at once).
    /// </summary>
    public static SharedBaseEncoder For(PretrainedEncoder encoder, bool loadedToShare = false)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        lock (Live)
        {
            if (TryGet(encoder.Identity.Sha256) is { } live) return live;
            var weights = loadedToShare ? Alias(encoder.Model) : encoder.Model.Clone();
            weights.eval();
            var shared = new SharedBaseEncoder(weights, encoder.Tokenizer, encoder.Identity);
            Live[encoder.Identity.Sha256] = new WeakReference<SharedBaseEncoder>(shared);
            return shared;
        }
    }

    /// <summary>
    /// A new encoder with the base's weights: aliases of them when <paramref name="frozen"/> (LoRA and head-only models
    /// never write the base), else a copy that training may change.
    /// </summary>
    public BertModel CreateEncoder(bool frozen) => frozen ? Alias(weights) : weights.Clone();

    /// <summary>Whether <paramref name="encoder"/>'s weights are this base's (the same storage).</summary>
    internal bool Shares(BertModel encoder) => System.Runtime.CompilerServices.Unsafe.AreSame(
        ref System.Runtime.InteropServices.MemoryMarshal.GetReference(encoder.parameters().First().bytes),
        ref System.Runtime.InteropServices.MemoryMarshal.GetReference(weights.parameters().First().bytes));

    /// <summary>A model of the same shape whose every parameter and buffer shares <paramref name="source"/>'s storage.</summary>
    private static BertModel Alias(BertModel source)
    {
        var alias = new BertModel(source.Config);
        using var _ = no_grad();
        var parameters = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in alias.named_parameters()) parameter.set_(parameters[name]);
        var buffers = source.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        foreach (var (name, buffer) in alias.named_buffers()) buffer.set_(buffers[name]);
        alias.train(source.training);
        return alias;
    }
}
