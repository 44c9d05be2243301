using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Encoders;

/// <summary>
/// A BERT-family encoder (BERT, MiniLM, and kin: Devlin et al. 2019) in TorchSharp. Parameter names follow
/// Hugging Face's <c>BertModel</c> (<c>embeddings.word_embeddings.weight</c>,
/// <c>encoder.layer.0.attention.self.query.weight</c>, ...) so that checkpoints map by name.
/// </summary>
/// <example>
/// <code>
/// using var model = new BertModel(new BertConfig { NumHiddenLayers = 2 });
/// model.eval();
/// using var scope = torch.NewDisposeScope();
/// var output = model.forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
/// // output.LastHiddenState: [batch, seq, hidden]
/// </code>
/// </example>
public sealed class BertModel : nn.Module
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;

    /// <summary>Builds a randomly initialised encoder of the given shape (weights as in BERT's initialiser).</summary>
    public BertModel(BertConfig config) : base(nameof(BertModel))
    {
        Config = config.Validate();
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        pooler = config.AddPoolingLayer ? new BertPooler(config) : null;
        RegisterComponents();
        InitializeWeights();
        // TorchSharp puts some new parameters (the embeddings') in the dispose scope open on this thread; the model
        // owns its weights, so they must outlive that scope.
        CurrentDisposeScope?.Detach(parameters());
        CurrentDisposeScope?.Detach(buffers());
    }

    /// <summary>The configuration this encoder was built from.</summary>
    public BertConfig Config { get; }

    /// <summary>
    /// Recompute each layer in backward instead of keeping its activations (Hugging Face's <c>gradient_checkpointing</c>):
    /// training memory falls to about one layer's activations for about one more forward pass per step. CPU only: the
    /// recompute replays dropout from the CPU generator.
    /// </summary>
    public bool GradientCheckpointing
    {
        get => encoder.GradientCheckpointing;
        set => encoder.GradientCheckpointing = value;
    }

    /// <summary>
    /// Dropout on the attention probabilities while training; starts at the checkpoint's
    /// <see cref="BertConfig.AttentionProbsDropoutProb"/>. At 0 a CPU training step can use libtorch's fused attention
    /// kernel, which takes no dropout on the CPU (see docs/benchmarks.md for what that saves).
    /// </summary>
    public double AttentionDropout
    {
        get => encoder.Layers[0].Attention.Self.DropoutProbability;
        set
        {
            if (!(value >= 0 && value < 1)) throw new ArgumentOutOfRangeException(nameof(AttentionDropout), value, "Attention dropout must be in [0, 1).");
            foreach (var block in encoder.Layers) block.Attention.Self.DropoutProbability = value;
        }
    }

    /// <summary>Runs the encoder.</summary>
    /// <param name="inputIds">Token ids, [batch, seq], int64.</param>
    /// <param name="attentionMask">1 for real tokens, 0 for padding, [batch, seq].</param>
    /// <param name="tokenTypeIds">Segment ids, [batch, seq]; zeros when null.</param>
    /// <param name="outputHiddenStates">Also return the embeddings' output and every layer's output.</param>
    /// <param name="outputAttentions">Also return every layer's attention probabilities (slower: no fused attention).</param>
    public BertModelOutput forward(Tensor inputIds, Tensor attentionMask, Tensor? tokenTypeIds = null,
        bool outputHiddenStates = false, bool outputAttentions = false)
    {
        // Each block below runs in its own dispose scope: TorchSharp otherwise keeps every intermediate tensor until the
        // caller's scope ends (hundreds of MB at 32x128), while autograd keeps only what backward needs.
        Tensor hidden;
        using (var scope = NewDisposeScope())
            hidden = embeddings.forward(inputIds, tokenTypeIds).MoveToOuterDisposeScope();   // [batch, seq, hidden]

        // Additive mask: 0 on real tokens, the dtype's minimum on padding. [batch, seq] -> [batch, 1, 1, seq]
        // broadcasts over heads and query positions.
        var (batch, seq) = (attentionMask.shape[0], attentionMask.shape[1]);
        Tensor additiveMask = (1 - attentionMask.to(hidden.dtype)).mul(finfo(hidden.dtype).min).view(batch, 1, 1, seq);

        var (last, hiddenStates, attentions) = encoder.forward(hidden, additiveMask, outputHiddenStates, outputAttentions);
        Tensor? pooled = pooler?.forward(last);
        return new BertModelOutput(last, pooled, hiddenStates, attentions);
    }

    /// <summary>A new model with the same configuration and a copy of every weight (what a fine-tune changes is then its own).</summary>
    public BertModel Clone()
    {
        var copy = new BertModel(Config);
        using var _ = no_grad();
        var source = named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in copy.named_parameters()) parameter.copy_(source[name]);
        return copy;
    }

    /// <summary>BERT's initialiser: normal(0, 0.02) weights, zero biases, unit LayerNorm.</summary>
    private void InitializeWeights()
    {
        using var _ = no_grad();
        foreach (var (_, module) in named_modules())
        {
            switch (module)
            {
                case Linear linear:
                    nn.init.normal_(linear.weight, 0, 0.02);
                    if (linear.bias is not null) nn.init.zeros_(linear.bias);
                    break;
                case Embedding embedding:
                    nn.init.normal_(embedding.weight, 0, 0.02);
                    break;
                case LayerNorm norm:
                    nn.init.ones_(norm.weight);
                    nn.init.zeros_(norm.bias);
                    break;
            }
        }
    }
}

/// <summary>What <see cref="BertModel.forward"/> returns; the tensors belong to the caller's dispose scope.</summary>
/// <param name="LastHiddenState">The last layer's output, [batch, seq, hidden].</param>
/// <param name="PooledOutput">tanh(dense([CLS] state)), [batch, hidden], when the model has a pooler.</param>
/// <param name="HiddenStates">When asked for: the embeddings' output then each layer's output, each [batch, seq, hidden].</param>
/// <param name="Attentions">When asked for: each layer's attention probabilities, [batch, heads, seq, seq].</param>
public sealed record BertModelOutput(
    Tensor LastHiddenState,
    Tensor? PooledOutput,
    IReadOnlyList<Tensor>? HiddenStates,
    IReadOnlyList<Tensor>? Attentions);

/// <summary>Word, position and segment embeddings, summed and normalised.</summary>
internal sealed class BertEmbeddings : nn.Module
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly double dropout;

    public BertEmbeddings(BertConfig config) : base(nameof(BertEmbeddings))
    {
        word_embeddings = nn.Embedding(config.VocabSize, config.HiddenSize, padding_idx: config.PadTokenId);
        position_embeddings = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        token_type_embeddings = nn.Embedding(config.TypeVocabSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = config.HiddenDropoutProb;
        RegisterComponents();
    }

    public Tensor forward(Tensor inputIds, Tensor? tokenTypeIds)
    {
        long seq = inputIds.shape[1];
        if (seq > position_embeddings.weight!.shape[0])
            throw new ArgumentException($"Sequence length {seq} exceeds the model's {position_embeddings.weight.shape[0]} positions.", nameof(inputIds));
        Tensor positions = arange(seq, dtype: int64, device: inputIds.device).unsqueeze(0);       // [1, seq]
        Tensor types = tokenTypeIds ?? zeros_like(inputIds);
        Tensor sum = word_embeddings.forward(inputIds) + position_embeddings.forward(positions) + token_type_embeddings.forward(types);
        return FastDropout.Apply(LayerNorm.forward(sum), dropout, training);                       // [batch, seq, hidden]
    }
}

/// <summary>The stack of transformer layers.</summary>
internal sealed class BertEncoder : nn.Module
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig config) : base(nameof(BertEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    public IList<BertLayer> Layers => layer;

    public bool GradientCheckpointing { get; set; }

    public (Tensor Last, IReadOnlyList<Tensor>? HiddenStates, IReadOnlyList<Tensor>? Attentions) forward(
        Tensor hidden, Tensor additiveMask, bool outputHiddenStates, bool outputAttentions)
    {
        var hiddenStates = outputHiddenStates ? new List<Tensor> { hidden } : null;
        var attentions = outputAttentions ? new List<Tensor>() : null;
        bool checkpoint = GradientCheckpointing && training && is_grad_enabled() && !outputAttentions;
        if (checkpoint && hidden.device_type != DeviceType.CPU)
            throw new NotSupportedException($"Gradient checkpointing replays dropout from the CPU generator and runs on the CPU only; this model is on {hidden.device}. Turn {nameof(BertModel.GradientCheckpointing)} off.");
        using var anchor = checkpoint ? empty(0, requires_grad: true) : null;   // lets backward reach a checkpoint whose input needs no grad
        Tensor input = hidden;
        foreach (var block in layer)
        {
            Tensor previous = hidden;
            Tensor? probabilities = null;
            if (checkpoint) hidden = LayerCheckpoint.Forward(block, hidden, additiveMask, anchor!);
            else (hidden, probabilities) = block.forward(hidden, additiveMask, outputAttentions);
            hiddenStates?.Add(hidden);
            if (probabilities is not null) attentions!.Add(probabilities);
            // A layer output this method made and does not return: release it now (autograd keeps it if backward needs it).
            if (hiddenStates is null && !ReferenceEquals(previous, input)) previous.Dispose();
        }
        return (hidden, hiddenStates, attentions);
    }
}

/// <summary>One transformer layer: self-attention then feed-forward, each with a residual and post-LayerNorm.</summary>
internal sealed class BertLayer : nn.Module
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig config) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config);
        intermediate = new BertIntermediate(config);
        output = new BertResidualOutput(config.IntermediateSize, config);
        RegisterComponents();
    }

    public BertAttention Attention => attention;

    public (Tensor Hidden, Tensor? Probabilities) forward(Tensor hidden, Tensor additiveMask, bool outputAttentions)
    {
        Tensor attended;
        Tensor? probabilities;
        using (var scope = NewDisposeScope())
        {
            (attended, probabilities) = attention.forward(hidden, additiveMask, outputAttentions);
            attended.MoveToOuterDisposeScope();
            probabilities?.MoveToOuterDisposeScope();
        }
        Tensor result;
        using (var scope = NewDisposeScope())
            result = output.forward(intermediate.forward(attended), attended).MoveToOuterDisposeScope();
        attended.Dispose();
        return (result, probabilities);
    }
}

/// <summary>Self-attention and its output projection (<c>attention.self</c>, <c>attention.output</c>).</summary>
internal sealed class BertAttention : nn.Module
{
    [ComponentName(Name = "self")] private readonly BertSelfAttention selfAttention;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig config) : base(nameof(BertAttention))
    {
        selfAttention = new BertSelfAttention(config);
        output = new BertResidualOutput(config.HiddenSize, config);
        RegisterComponents();
    }

    public BertSelfAttention Self => selfAttention;

    public (Tensor Hidden, Tensor? Probabilities) forward(Tensor hidden, Tensor additiveMask, bool outputAttentions)
    {
        var (context, probabilities) = selfAttention.forward(hidden, additiveMask, outputAttentions);
        return (output.forward(context, hidden), probabilities);
    }
}

/// <summary>Multi-head scaled dot-product attention. The projections are replaceable modules so that adapters can wrap them.</summary>
internal sealed class BertSelfAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> query;
    private readonly nn.Module<Tensor, Tensor> key;
    private readonly nn.Module<Tensor, Tensor> value;
    private readonly int heads;
    private readonly int headSize;

    public BertSelfAttention(BertConfig config) : base(nameof(BertSelfAttention))
    {
        query = nn.Linear(config.HiddenSize, config.HiddenSize);
        key = nn.Linear(config.HiddenSize, config.HiddenSize);
        value = nn.Linear(config.HiddenSize, config.HiddenSize);
        heads = config.NumAttentionHeads;
        headSize = config.HeadSize;
        DropoutProbability = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    public double DropoutProbability { get; set; }

    public (Tensor Context, Tensor? Probabilities) forward(Tensor hidden, Tensor additiveMask, bool outputAttentions)
    {
        using var scope = NewDisposeScope();
        var (context, probabilities) = Attend(hidden, additiveMask, outputAttentions);
        probabilities?.MoveToOuterDisposeScope();
        return (context.MoveToOuterDisposeScope(), probabilities);
    }

    private (Tensor Context, Tensor? Probabilities) Attend(Tensor hidden, Tensor additiveMask, bool outputAttentions)
    {
        var (batch, seq, width) = (hidden.shape[0], hidden.shape[1], hidden.shape[2]);
        // [batch, seq, hidden] -> [batch, heads, seq, headSize]
        Tensor SplitHeads(Tensor x) => x.view(batch, seq, heads, headSize).transpose(1, 2);
        Tensor q = SplitHeads(query.forward(hidden));
        Tensor k = SplitHeads(key.forward(hidden));
        Tensor v = SplitHeads(value.forward(hidden));
        double dropout = training ? DropoutProbability : 0.0;

        Tensor context;
        Tensor? probabilities = null;
        if (!outputAttentions && (dropout == 0 || hidden.device_type != DeviceType.CPU))
        {
            // The fused kernel never materialises the [seq, seq] probabilities.
            context = F.scaled_dot_product_attention(q, k, v, additiveMask, dropout);
        }
        else if (!outputAttentions)
        {
            context = AttendWithDropout(q, k, v, additiveMask, dropout);
        }
        else
        {
            Tensor scores = q.matmul(k.transpose(-1, -2)).div(Math.Sqrt(headSize)) + additiveMask;  // [batch, heads, seq, seq]
            probabilities = scores.softmax(-1);
            context = F.dropout(probabilities, dropout, training).matmul(v);                       // [batch, heads, seq, headSize]
        }
        // [batch, heads, seq, headSize] -> [batch, seq, hidden]
        return (context.transpose(1, 2).reshape(batch, seq, width), probabilities);
    }

    /// <summary>
    /// Attention with dropout on the probabilities, for training on the CPU: libtorch's fused CPU kernel takes no dropout,
    /// and its unfused fallback draws the [seq, seq] mask element by element; this is that fallback with a fast mask.
    /// </summary>
    internal static Tensor AttendWithDropout(Tensor q, Tensor k, Tensor v, Tensor additiveMask, double dropout)
    {
        double scale = 1 / Math.Sqrt(q.shape[^1]);
        Tensor scores = q.mul(scale).matmul(k.transpose(-1, -2)).add_(additiveMask);     // [batch, heads, seq, seq]
        Tensor kept = FastDropout.KeepOrZero(scores.softmax(-1), dropout, out double keptScale);
        return kept.matmul(v).mul_(keptScale);                                          // [batch, heads, seq, headSize]
    }
}

/// <summary>
/// Projection, dropout, residual and post-LayerNorm: BERT's <c>attention.output</c> (from the attention's width) and
/// <c>output</c> (from the feed-forward width) are both this block.
/// </summary>
internal sealed class BertResidualOutput : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> dense;
    private readonly LayerNorm LayerNorm;
    private readonly double dropout;

    public BertResidualOutput(int inFeatures, BertConfig config) : base(nameof(BertResidualOutput))
    {
        dense = nn.Linear(inFeatures, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = config.HiddenDropoutProb;
        RegisterComponents();
    }

    public Tensor forward(Tensor input, Tensor residual) => LayerNorm.forward(FastDropout.Apply(dense.forward(input), dropout, training).add_(residual));
}

/// <summary>The feed-forward block's expansion and activation.</summary>
internal sealed class BertIntermediate : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> dense;
    private readonly string activation;

    public BertIntermediate(BertConfig config) : base(nameof(BertIntermediate))
    {
        dense = nn.Linear(config.HiddenSize, config.IntermediateSize);
        activation = config.HiddenAct;
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();                                                  // frees x unless backward keeps it
        Tensor x = dense.forward(hidden);                                                     // [batch, seq, intermediate]
        Tensor activated = activation switch
        {
            "gelu" => F.gelu(x),
            "relu" => F.relu(x),
            _ => F.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        };
        return activated.MoveToOuterDisposeScope();
    }
}

/// <summary>BERT's pooler: a dense layer and tanh over the [CLS] state.</summary>
internal sealed class BertPooler : nn.Module
{
    private readonly Linear dense;

    public BertPooler(BertConfig config) : base(nameof(BertPooler))
    {
        dense = nn.Linear(config.HiddenSize, config.HiddenSize);
        RegisterComponents();
    }

    public Tensor forward(Tensor last) => dense.forward(last[.., 0]).tanh();                   // [batch, hidden]
}
