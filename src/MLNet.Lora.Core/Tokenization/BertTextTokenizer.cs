using Microsoft.ML.Tokenizers;

namespace MLNet.Lora.Tokenization;

/// <summary>
/// WordPiece tokenization for BERT-family encoders, built on Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/>:
/// single texts and text pairs, truncated to a maximum length (MLNet.Lora's <c>EncodeBatch</c> pads batches of them).
/// </summary>
/// <example>
/// <code>
/// var tokenizer = BertTextTokenizer.FromVocabulary(File.OpenRead("vocab.txt"), lowerCase: true);
/// EncodedText one = tokenizer.Encode("How are you?", maxLength: 128);
/// </code>
/// </example>
public sealed class BertTextTokenizer
{
    private readonly BertTokenizer tokenizer;

    private BertTextTokenizer(BertTokenizer tokenizer, bool lowerCase, string[] vocabulary)
    {
        this.tokenizer = tokenizer;
        LowerCase = lowerCase;
        Vocabulary = vocabulary;
    }

    /// <summary>The WordPiece vocabulary (the lines of <c>vocab.txt</c>; a token's id is its index).</summary>
    public IReadOnlyList<string> Vocabulary { get; }

    /// <summary>Whether text is lower-cased before WordPiece (true for uncased checkpoints).</summary>
    public bool LowerCase { get; }

    /// <summary>Id of <c>[PAD]</c>.</summary>
    public int PadTokenId => tokenizer.PaddingTokenId;

    /// <summary>Id of <c>[CLS]</c>.</summary>
    public int ClassificationTokenId => tokenizer.ClassificationTokenId;

    /// <summary>Id of <c>[SEP]</c>.</summary>
    public int SeparatorTokenId => tokenizer.SeparatorTokenId;

    /// <summary>Reads a WordPiece <c>vocab.txt</c> (one token a line).</summary>
    public static BertTextTokenizer FromVocabulary(Stream vocabulary, bool lowerCase)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        // Kept as tokens too, so that an exported model can carry its vocabulary.
        using var reader = new StreamReader(vocabulary, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: -1, leaveOpen: true);
        string text = reader.ReadToEnd();
        string[] tokens = WordPieceVocabulary.Parse(text, "vocabulary");
        var options = new BertOptions { LowerCaseBeforeTokenization = lowerCase, ApplyBasicTokenization = true };
        using var bytes = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text), writable: false);
        return new BertTextTokenizer(BertTokenizer.Create(bytes, options), lowerCase, tokens);
    }

    /// <summary>Reads a WordPiece <c>vocab.txt</c> file.</summary>
    public static BertTextTokenizer FromVocabularyFile(string path, bool lowerCase)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Vocabulary file '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        return FromVocabulary(stream, lowerCase);
    }

    /// <summary>
    /// Encodes a text, or a pair, as <c>[CLS] text [SEP]</c> or <c>[CLS] text [SEP] pair [SEP]</c>, truncating to
    /// <paramref name="maxLength"/> tokens (for pairs, the longer side loses tokens first, as Hugging Face's
    /// <c>longest_first</c>). Null text counts as empty. Invalid UTF-16 (a lone surrogate, as a truncated string or a
    /// bad decode leaves) is replaced by U+FFFD, as .NET's encoders do, and flagged in
    /// <see cref="EncodedText.ReplacedInvalidText"/>, rather than failing the whole batch.
    /// </summary>
    public EncodedText Encode(string? text, string? pair = null, int maxLength = 128)
    {
        int specials = pair is null ? 2 : 3;
        if (maxLength < specials + 1)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"Must leave room for {specials} special tokens and one word.");

        bool replaced = InvalidText.Replace(ref text) | InvalidText.Replace(ref pair);
        IReadOnlyList<int> first = Words(text);
        IReadOnlyList<int> second = pair is null ? [] : Words(pair);
        int budget = maxLength - specials;
        int keepFirst = first.Count, keepSecond = second.Count;
        while (keepFirst + keepSecond > budget)
        {
            if (keepFirst >= keepSecond) keepFirst--; else keepSecond--;
        }
        bool truncated = keepFirst < first.Count || keepSecond < second.Count;

        int length = keepFirst + keepSecond + specials;
        var ids = new int[length];
        var types = new int[length];
        int at = 0;
        ids[at++] = ClassificationTokenId;
        for (int i = 0; i < keepFirst; i++) ids[at++] = first[i];
        ids[at++] = SeparatorTokenId;
        if (pair is not null)
        {
            int secondStart = at;
            for (int i = 0; i < keepSecond; i++) ids[at++] = second[i];
            ids[at++] = SeparatorTokenId;
            types.AsSpan(secondStart).Fill(1);
        }
        return new EncodedText(ids, types, truncated) { ReplacedInvalidText = replaced };
    }

    private IReadOnlyList<int> Words(string? text) =>
        string.IsNullOrEmpty(text) ? [] : tokenizer.EncodeToIds(text, addSpecialTokens: false, considerPreTokenization: true, considerNormalization: true);
}
