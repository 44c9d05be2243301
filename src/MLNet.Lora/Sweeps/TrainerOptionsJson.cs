using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using MLNet.Lora.Checkpoints;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// The trainer options a sweep plan carries to other processes: every public field that holds a setting (text, numbers,
/// flags, enums, the base model's source), by its field name. Fields that hold live objects (an encoder already
/// loaded, progress, callbacks, a cancellation token) cannot travel and are left out; a plan refuses an options object
/// that relies on <see cref="LoraTextClassificationTrainer.Options.Encoder"/>.
/// </summary>
internal static class TrainerOptionsJson
{
    private static readonly JsonSerializerOptions Json = new()
    {
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private static IEnumerable<FieldInfo> SettingFields => typeof(LoraTextClassificationTrainer.Options)
        .GetFields(BindingFlags.Public | BindingFlags.Instance)
        .Where(f => !f.IsInitOnly && IsSetting(f.FieldType));

    public static JsonObject Write(LoraTextClassificationTrainer.Options options)
    {
        var json = new JsonObject();
        foreach (var field in SettingFields)
            json[field.Name] = JsonSerializer.SerializeToNode(field.GetValue(options), field.FieldType, Json);
        return json;
    }

    /// <exception cref="InvalidDataException">A key names no trainer option, or its value does not fit the option.</exception>
    public static LoraTextClassificationTrainer.Options Read(JsonObject json, string source)
    {
        var options = new LoraTextClassificationTrainer.Options();
        var fields = SettingFields.ToDictionary(f => f.Name, StringComparer.Ordinal);
        foreach (var (name, value) in json)
        {
            if (!fields.TryGetValue(name, out var field))
                throw new InvalidDataException($"{source}: 'trainer.{name}' is not a trainer option this version knows " +
                    $"(options: {string.Join(", ", fields.Keys)}).");
            try
            {
                field.SetValue(options, value is null ? null : value.Deserialize(field.FieldType, Json));
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{source}: 'trainer.{name}' has a value ({value?.ToJsonString()}) that is not a {field.FieldType.Name}: {e.Message}", e);
            }
        }
        return options;
    }

    private static bool IsSetting(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(EncoderSource);
    }
}
