using System.Text.Json;
using System.Text.Json.Serialization;
using MLNet.Lora.Encoders;
using MLNet.Lora.Integration;

namespace MLNet.Lora.Peft;

/// <summary>
/// <c>mlnet_lora.json</c>, written beside a PEFT adapter: what PEFT's files cannot say (how token states were pooled,
/// the columns, the classes, the exact base encoder), so that importing the folder gives back the same model.
/// PEFT ignores the file.
/// </summary>
/// <param name="FormatVersion">1.</param>
/// <param name="Pooling">How token states were pooled before the head: <c>pooler</c> is <c>BertForSequenceClassification</c>'s own head.</param>
/// <param name="Settings">The exported model's settings (its <see cref="LoraModelSettings.Lora"/> is <c>adapter_config.json</c>'s).</param>
internal sealed record PeftSidecar(
    [property: JsonPropertyName("format_version")] int FormatVersion,
    [property: JsonPropertyName("pooling")] string Pooling,
    [property: JsonPropertyName("settings")] LoraModelSettings Settings)
{
    public const string FileName = "mlnet_lora.json";
    public const int CurrentVersion = 1;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static PeftSidecar For(LoraModelSettings settings) => new(CurrentVersion, PoolingName(settings.Pooling), settings);

    public static string PoolingName(PoolingStrategy pooling) => pooling switch
    {
        PoolingStrategy.Pooler => "pooler",
        PoolingStrategy.Cls => "cls",
        _ => "mean",
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static PeftSidecar Read(string path)
    {
        PeftSidecar? sidecar;
        try
        {
            sidecar = JsonSerializer.Deserialize<PeftSidecar>(File.ReadAllText(path), Json);
        }
        catch (Exception e) when (e is JsonException or ArgumentOutOfRangeException)
        {
            throw new InvalidDataException($"'{path}' is not a valid {FileName}: {e.Message}", e);
        }
        if (sidecar?.Settings is null) throw new InvalidDataException($"'{path}' is empty or has no settings.");
        if (sidecar.FormatVersion > CurrentVersion)
            throw new InvalidDataException($"'{path}' is format version {sidecar.FormatVersion}; this MLNet.Lora reads versions up to {CurrentVersion}.");
        return sidecar;
    }
}
