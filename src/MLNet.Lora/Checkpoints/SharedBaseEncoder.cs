using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using static TorchSharp.torch;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// A model's base encoder: its tokenizer and identity, over weights held once per process, keyed by their SHA-256, and
/// shared by every model over them: ten loaded adapters over the default model hold one 87 MB base, not ten. Models over
/// a frozen base get encoders whose tensors alias the shared weights (same storage, no copy); libtorch frees the storage
/// with its last user. This holds in CPU memory; on a GPU each model's move to the device makes a device copy. The registry holds the weights weakly, so a base no model uses any more is reclaimed by the
/// garbage collector.
/// </summary>
internal sealed class SharedBaseEncoder
{
    private static readonly Dictionary<string, WeakReference<Weights>> Live = new(StringComparer.OrdinalIgnoreCase);
    private readonly Weights weights;

    private SharedBaseEncoder(Weights weights, BertTextTokenizer tokenizer, EncoderIdentity identity)
    {
        this.weights = weights;
        Tokenizer = tokenizer;
        Identity = identity;
    }

    /// <summary>The tokenizer of the encoder this base came from.</summary>
    public BertTextTokenizer Tokenizer { get; }

    /// <summary>The identity (name, weight hash, source) of the encoder this base came from.</summary>
    public EncoderIdentity Identity { get; }

    /// <summary>The base's configuration.</summary>
    public BertConfig Config => weights.Model.Config;

    /// <summary>
    /// The base <paramref name="recorded"/> names, if some model in the process uses weights of its SHA-256 that came
    /// from the same source (so the tokenizer is the recorded one too); null otherwise.
    /// </summary>
    public static SharedBaseEncoder? TryGet(EncoderIdentity recorded)
    {
        lock (Live)
        {
            return Find(recorded.Sha256) is { } live && live.First.Source == recorded.Source
                ? new SharedBaseEncoder(live, live.Tokenizer, recorded)
                : null;
        }
    }

    /// <summary>Whether some model in the process still uses weights of <paramref name="sha256"/>.</summary>
    public static bool IsLive(string sha256)
    {
        lock (Live) return Find(sha256) is not null;
    }

    /// <summary>
    /// The base for <paramref name="encoder"/>: its tokenizer and identity over the process's weights of its SHA-256. New
    /// weights copy those of an encoder the caller keeps (so later changes to it never reach the models over this base),
    /// and take those of one the caller only loaded to share (<paramref name="loadedToShare"/>: aliased, no copy; the
    /// caller may dispose it at once).
    /// </summary>
    public static SharedBaseEncoder For(PretrainedEncoder encoder, bool loadedToShare = false)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        lock (Live)
        {
            if (Find(encoder.Identity.Sha256) is not { } weights)
            {
                var model = loadedToShare ? Alias(encoder.Model) : encoder.Model.Clone();
                model.eval();
                weights = new Weights(model, encoder.Tokenizer, encoder.Identity);
                Live[encoder.Identity.Sha256] = new WeakReference<Weights>(weights);
            }
            return new SharedBaseEncoder(weights, encoder.Tokenizer, encoder.Identity);
        }
    }

    /// <summary>
    /// A new encoder with the base's weights: aliases of them when <paramref name="frozen"/> (LoRA and head-only models
    /// never write the base), else a copy that training may change.
    /// </summary>
    public BertModel CreateEncoder(bool frozen) => frozen ? Alias(weights.Model) : weights.Model.Clone();

    /// <summary>Whether <paramref name="encoder"/>'s weights are this base's (the same storage).</summary>
    internal bool Shares(BertModel encoder) => System.Runtime.CompilerServices.Unsafe.AreSame(
        ref System.Runtime.InteropServices.MemoryMarshal.GetReference(encoder.parameters().First().bytes),
        ref System.Runtime.InteropServices.MemoryMarshal.GetReference(weights.Model.parameters().First().bytes));

    private static Weights? Find(string sha256) => Live.TryGetValue(sha256, out var entry) && entry.TryGetTarget(out var weights) ? weights : null;

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

    /// <summary>The process's one copy of some weights, with the tokenizer and identity of the encoder that brought them.</summary>
    private sealed class Weights
    {
        private readonly long bytes;

        public Weights(BertModel model, BertTextTokenizer tokenizer, EncoderIdentity first)
        {
            Model = model;
            Tokenizer = tokenizer;
            First = first;
            bytes = model.parameters().Concat(model.buffers()).Sum(t => t.numel() * t.ElementSize);
            // The garbage collector sees only this small object; tell it how much native memory hangs on it.
            GC.AddMemoryPressure(bytes);
        }

        ~Weights()
        {
            Model.Dispose();
            GC.RemoveMemoryPressure(bytes);
        }

        public BertModel Model { get; }

        public BertTextTokenizer Tokenizer { get; }

        public EncoderIdentity First { get; }
    }
}
