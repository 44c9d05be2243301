using System.Text;
namespace MLNet.Lora.Tokenization;

/// <summary>
/// A WordPiece <c>vocab.txt</c> held as its lines (token id = line number), so that a loaded encoder can write its
/// vocabulary back out and build its tokenizer from the same text.
/// </summary>
internal static class WordPieceVocabulary
{
    /// <summary>Splits vocab.txt text into tokens as Hugging Face's <c>load_vocab</c> does (one per line, the final newline ends the last).</summary>
    public static string[] Parse(string text, string sourceForErrors)
    {
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        var lines = text.Split('\n');
        int count = lines.Length;
        if (count > 0 && lines[^1].Length == 0) count--;       // text ends with a newline
        var tokens = new string[count];
        for (int i = 0; i < count; i++) tokens[i] = lines[i].TrimEnd('\r');
        if (tokens.Length == 0) throw new InvalidDataException($"Vocabulary '{sourceForErrors}' is empty.");
        foreach (string special in (string[])["[CLS]", "[SEP]", "[PAD]", "[UNK]"])
        {
            if (Array.IndexOf(tokens, special) < 0)
                throw new InvalidDataException($"Vocabulary '{sourceForErrors}' has no {special} token; it is not a BERT WordPiece vocab.txt.");
        }
        return tokens;
    }

    /// <summary>Reads a vocab.txt file.</summary>
    public static string[] ReadFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Vocabulary file '{path}' does not exist.", path);
        return Parse(File.ReadAllText(path, Encoding.UTF8), path);
    }

    /// <summary>The vocab.txt text of <paramref name="tokens"/>: one per line, each ending with a newline.</summary>
    public static string ToText(IReadOnlyList<string> tokens)
    {
        var builder = new StringBuilder(tokens.Count * 8);
        foreach (string token in tokens) builder.Append(token).Append('\n');
        return builder.ToString();
    }

    /// <summary>Builds the tokenizer for <paramref name="tokens"/>.</summary>
    public static BertTextTokenizer CreateTokenizer(IReadOnlyList<string> tokens, bool lowerCase)
    {
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(ToText(tokens)), writable: false);
        return BertTextTokenizer.FromVocabulary(stream, lowerCase);
    }

    /// <summary>Throws when the vocabulary has more tokens than the model has embeddings: their ids would be out of range.</summary>
    public static void CheckFits(IReadOnlyList<string> tokens, int vocabSize, string vocabularyForErrors, string modelForErrors)
    {
        if (tokens.Count > vocabSize)
            throw new InvalidDataException(
                $"Vocabulary '{vocabularyForErrors}' has {tokens.Count} tokens but '{modelForErrors}' embeds only {vocabSize}; " +
                "the vocabulary does not belong to this model.");
    }
}
