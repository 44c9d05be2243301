using MLNet.Lora.Checkpoints;
using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;
using MLNet.Lora.Training;

namespace MLNet.Lora.Forgetting;

/// <summary>
/// One side of a forgetting comparison (the reference, or the candidate): an encoder as it is now, with whatever
/// adapters it carries, and its tokenizer. It borrows the model: the caller keeps ownership and disposes it.
/// </summary>
/// <remarks>
/// The evaluator only reads the model. While measuring it switches to eval mode, may unmerge merged adapters and may
/// turn on <c>requires_grad</c> for gradient-based measures; every such change is undone before it returns.
/// </remarks>
public sealed class ComparedModel
{
    private ComparedModel(string name, BertModel encoder, BertTextTokenizer tokenizer)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Encoder = encoder ?? throw new ArgumentNullException(nameof(encoder));
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
    }

    /// <summary>Label used in reports.</summary>
    public string Name { get; }

    /// <summary>The encoder measured (with its adapters, if any).</summary>
    public BertModel Encoder { get; }

    /// <summary>The tokenizer of the encoder.</summary>
    public BertTextTokenizer Tokenizer { get; }

    /// <summary>A pretrained encoder as loaded, for instance <see cref="PretrainedEncoder.LoadDefault"/>: the usual reference.</summary>
    /// <param name="encoder">The encoder; not copied.</param>
    /// <param name="name">Label in reports; default the encoder's name.</param>
    public static ComparedModel FromEncoder(PretrainedEncoder encoder, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        return new ComparedModel(name ?? encoder.Identity.Name, encoder.Model, encoder.Tokenizer);
    }

    /// <summary>A fitted LoRA (or fully fine-tuned, or head-only) text classifier, for instance the candidate after a fine-tune.</summary>
    /// <param name="transformer">The fitted transformer (take it out of a pipeline's chain).</param>
    /// <param name="name">Label in reports; default the transformer's fine-tuning mode.</param>
    public static ComparedModel FromTransformer(LoraTextClassificationTransformer transformer, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        return new ComparedModel(name ?? $"{transformer.Settings.Mode} fine-tune", transformer.Model.Encoder, transformer.Tokenizer);
    }

    /// <summary>A classification model built and trained directly (for instance through <see cref="FineTuningLoop"/>).</summary>
    /// <param name="model">The model; its encoder is measured, its head is not used.</param>
    /// <param name="tokenizer">The tokenizer of its encoder.</param>
    /// <param name="name">Label in reports.</param>
    public static ComparedModel FromModel(TextClassificationModel model, BertTextTokenizer tokenizer, string name = "candidate")
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ComparedModel(name, model.Encoder, tokenizer);
    }

    /// <summary>A bare encoder and tokenizer.</summary>
    /// <param name="encoder">The encoder.</param>
    /// <param name="tokenizer">Its tokenizer.</param>
    /// <param name="name">Label in reports.</param>
    public static ComparedModel FromEncoder(BertModel encoder, BertTextTokenizer tokenizer, string name) => new(name, encoder, tokenizer);

    /// <summary>The model between two epochs of a fine-tune, as an epoch-end callback sees it.</summary>
    /// <param name="context">The callback's context.</param>
    public static ComparedModel FromEpoch(EpochEndedContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new ComparedModel($"epoch {context.Epoch}", context.Model.Encoder, context.Tokenizer);
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
