using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using MLNet.Lora.Integration;
using MLNet.Lora.Tokenization;

namespace MLNet.Lora.Deployment;

/// <summary>
/// What an ONNX file exported by MLNet.Lora says about itself in its <c>metadata_props</c>, beyond the graph: how to
/// tokenize, the classes, the columns, and where the model came from. MLNet.Lora writes it; MLNet.Lora.Onnx (or any
/// runtime: every value is text, the structured ones JSON) reads it.
/// </summary>
/// <remarks>
/// Keys (all prefixed <c>mlnet_lora.</c>): <c>format_version</c> (an integer, written first; a reader refuses a newer
/// one and reads every older one), <c>package_version</c>, <c>tokenizer</c> (JSON), <c>vocabulary</c> (vocab.txt
/// text), <c>max_length</c>, <c>pooling</c>, <c>labels</c> (JSON: type and values, or absent when the label had no key
/// values), <c>class_count</c>, <c>columns</c> (JSON), <c>base_encoder</c> (JSON: name, sha256, source),
/// <c>quantization</c>.
/// </remarks>
internal sealed record OnnxModelMetadata
{
    /// <summary>The format this code writes; readers accept this and every older one.</summary>
    public const int CurrentFormatVersion = 1;

    internal const string Prefix = "mlnet_lora.";
    internal const string FormatVersionKey = Prefix + "format_version";
    private const string PackageVersionKey = Prefix + "package_version";
    private const string TokenizerKey = Prefix + "tokenizer";
    private const string VocabularyKey = Prefix + "vocabulary";
    private const string MaxLengthKey = Prefix + "max_length";
    private const string PoolingKey = Prefix + "pooling";
    private const string LabelsKey = Prefix + "labels";
    private const string ClassCountKey = Prefix + "class_count";
    private const string ColumnsKey = Prefix + "columns";
    private const string BaseEncoderKey = Prefix + "base_encoder";
    private const string QuantizationKey = Prefix + "quantization";

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>The format version of the file it was read from (<see cref="CurrentFormatVersion"/> when written).</summary>
    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>The MLNet.Lora version that wrote it.</summary>
    public required string PackageVersion { get; init; }

    /// <summary>WordPiece settings.</summary>
    public required TokenizerSettings Tokenizer { get; init; }

    /// <summary>The vocabulary, a token's id being its index.</summary>
    public required IReadOnlyList<string> Vocabulary { get; init; }

    /// <summary>Tokens per text, special tokens included.</summary>
    public required int MaxLength { get; init; }

    /// <summary>The pooling the graph applies (<c>mean</c>, <c>cls</c> or <c>pooler</c>); informative, the graph does it.</summary>
    public required string Pooling { get; init; }

    /// <summary>The label's key values, or null when the label had none.</summary>
    public ClassKeyValues? Labels { get; init; }

    /// <summary>Number of classes (the width of <c>logits</c> and <c>probabilities</c>).</summary>
    public required int ClassCount { get; init; }

    /// <summary>The columns of the model that was exported (defaults for the scorer).</summary>
    public required ColumnNames Columns { get; init; }

    /// <summary>The base encoder's identity.</summary>
    public required EncoderDescription BaseEncoder { get; init; }

    /// <summary><c>none</c> or <c>dynamic_int8</c>.</summary>
    public required string Quantization { get; init; }

    /// <summary>WordPiece settings of the exported model.</summary>
    /// <param name="Kind">Always <c>bert_wordpiece</c> in format 1.</param>
    /// <param name="LowerCase">Whether text is lower-cased first.</param>
    internal sealed record TokenizerSettings(
        [property: JsonPropertyName("kind")] string Kind,
        [property: JsonPropertyName("lower_case")] bool LowerCase);

    /// <summary>Column names of the exported model.</summary>
    internal sealed record ColumnNames(
        [property: JsonPropertyName("text")] string Text,
        [property: JsonPropertyName("second_text")] string? SecondText,
        [property: JsonPropertyName("score")] string Score,
        [property: JsonPropertyName("predicted_label")] string PredictedLabel);

    /// <summary>Identity of the base encoder.</summary>
    internal sealed record EncoderDescription(
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("sha256")] string Sha256,
        [property: JsonPropertyName("source")] string? Source);

    private sealed record LabelValues(
        [property: JsonPropertyName("type")] string Type,
        [property: JsonPropertyName("values")] string[] Values);

    /// <summary>The metadata as ONNX <c>metadata_props</c> entries, the format version first.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ToProperties()
    {
        var properties = new List<KeyValuePair<string, string>>
        {
            new(FormatVersionKey, FormatVersion.ToString(CultureInfo.InvariantCulture)),
            new(PackageVersionKey, PackageVersion),
            new(TokenizerKey, JsonSerializer.Serialize(Tokenizer, Json)),
            new(VocabularyKey, WordPieceVocabulary.ToText(Vocabulary)),
            new(MaxLengthKey, MaxLength.ToString(CultureInfo.InvariantCulture)),
            new(PoolingKey, Pooling),
            new(ClassCountKey, ClassCount.ToString(CultureInfo.InvariantCulture)),
            new(ColumnsKey, JsonSerializer.Serialize(Columns, Json)),
            new(BaseEncoderKey, JsonSerializer.Serialize(BaseEncoder, Json)),
            new(QuantizationKey, Quantization),
        };
        if (Labels is not null) properties.Add(new(LabelsKey, JsonSerializer.Serialize(new LabelValues(Labels.Type, Labels.Values), Json)));
        return properties;
    }

    /// <summary>
    /// Reads the metadata of <paramref name="source"/>; throws <see cref="InvalidDataException"/> naming the file when
    /// MLNet.Lora did not write it, when a newer MLNet.Lora did, or when an entry is missing or malformed.
    /// </summary>
    public static OnnxModelMetadata Read(IReadOnlyDictionary<string, string> properties, string source)
    {
        ArgumentNullException.ThrowIfNull(properties);
        if (!properties.TryGetValue(FormatVersionKey, out string? versionText))
            throw new InvalidDataException(
                $"'{source}' was not exported by MLNet.Lora: its metadata has no '{FormatVersionKey}' entry. Export the fitted model with " +
                "LoraTextClassificationTransformer.ExportOnnx (or mlContext.Model.ExportLoraToOnnx), or score a foreign ONNX model with " +
                "Microsoft.ML.OnnxTransformer's ApplyOnnxModel.");
        if (!int.TryParse(versionText, NumberStyles.None, CultureInfo.InvariantCulture, out int version) || version < 1)
            throw new InvalidDataException($"'{source}' has an invalid '{FormatVersionKey}' ('{versionText}'); the file is damaged or was not written by MLNet.Lora.");
        if (version > CurrentFormatVersion)
            throw new InvalidDataException(
                $"'{source}' is format version {version}, newer than this MLNet.Lora.Onnx reads (up to {CurrentFormatVersion}): " +
                "update the MLNet.Lora.Onnx package to the version that exported it.");

        string Get(string key) => properties.TryGetValue(key, out string? value)
            ? value
            : throw new InvalidDataException($"'{source}' lacks the '{key}' metadata entry that format version {version} requires; re-export the model.");
        T Parse<T>(string key)
        {
            try
            {
                return JsonSerializer.Deserialize<T>(Get(key), Json) ?? throw new InvalidDataException($"'{source}': metadata entry '{key}' is empty.");
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"'{source}': metadata entry '{key}' is not valid JSON ({e.Message}); re-export the model.", e);
            }
        }
        int Int(string key) => int.TryParse(Get(key), NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0
            ? value
            : throw new InvalidDataException($"'{source}': metadata entry '{key}' must be a positive integer but is '{Get(key)}'.");

        var tokenizer = Parse<TokenizerSettings>(TokenizerKey);
        if (tokenizer.Kind != "bert_wordpiece")
            throw new InvalidDataException($"'{source}' uses tokenizer '{tokenizer.Kind}'; this MLNet.Lora.Onnx knows 'bert_wordpiece' only.");
        ClassKeyValues? labels = null;
        if (properties.ContainsKey(LabelsKey))
        {
            var values = Parse<LabelValues>(LabelsKey);
            labels = new ClassKeyValues(values.Type, values.Values);
        }
        var metadata = new OnnxModelMetadata
        {
            FormatVersion = version,
            PackageVersion = Get(PackageVersionKey),
            Tokenizer = tokenizer,
            Vocabulary = WordPieceVocabulary.Parse(Get(VocabularyKey), $"{source} ({VocabularyKey})"),
            MaxLength = Int(MaxLengthKey),
            Pooling = Get(PoolingKey),
            Labels = labels,
            ClassCount = Int(ClassCountKey),
            Columns = Parse<ColumnNames>(ColumnsKey),
            BaseEncoder = Parse<EncoderDescription>(BaseEncoderKey),
            Quantization = Get(QuantizationKey),
        };
        if (labels is not null && labels.Values.Length != metadata.ClassCount)
            throw new InvalidDataException($"'{source}' lists {labels.Values.Length} label values for {metadata.ClassCount} classes; re-export the model.");
        return metadata;
    }

    /// <summary>The tokenizer the metadata describes.</summary>
    public BertTextTokenizer CreateTokenizer() => WordPieceVocabulary.CreateTokenizer(Vocabulary, Tokenizer.LowerCase);
}
