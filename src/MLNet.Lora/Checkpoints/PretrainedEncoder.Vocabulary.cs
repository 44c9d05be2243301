using MLNet.Lora.Encoders;
using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Checkpoints;

public sealed partial class PretrainedEncoder
{
    private readonly string[]? vocabulary;

    /// <summary>
    /// Wraps an encoder already in memory together with the WordPiece vocabulary its tokenizer was built from, so that
    /// <see cref="SaveHuggingFaceFolder"/> can write <c>vocab.txt</c>.
    /// </summary>
    /// <param name="model">The encoder network.</param>
    /// <param name="tokenizer">The matching tokenizer.</param>
    /// <param name="identity">Name, weight hash and source.</param>
    /// <param name="vocabulary">The tokens of <c>vocab.txt</c>, in id order.</param>
    public PretrainedEncoder(BertModel model, BertTextTokenizer tokenizer, EncoderIdentity identity, IReadOnlyList<string> vocabulary)
        : this(model, tokenizer, identity)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        this.vocabulary = [.. vocabulary];
    }

    /// <summary>
    /// The WordPiece vocabulary (the lines of <c>vocab.txt</c>; a token's id is its index). Set by every loading
    /// factory; null for an encoder built from parts without one.
    /// </summary>
    public IReadOnlyList<string>? Vocabulary => vocabulary;
}
