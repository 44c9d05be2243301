using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MLNet.Lora.Adapters;

namespace MLNet.Lora.Peft;

/// <summary>
/// PEFT's <c>adapter_config.json</c> for a LoRA adapter: written from a <see cref="LoraConfig"/> with the fields
/// <c>PeftModel.from_pretrained</c> reads, and read back into one, refusing what MLNet.Lora cannot honour
/// (DoRA, LoRA biases, trained biases, per-layer selection, transposed weights, other adapter types) with an error
/// naming the field.
/// </summary>
internal static class PeftAdapterConfig
{
    public const string FileName = "adapter_config.json";

    /// <summary>The modules PEFT saves whole beside a sequence-classification adapter; only the head is trained here.</summary>
    private static readonly string[] HeadModules = ["classifier", "score"];

    /// <summary>The JSON PEFT writes for <paramref name="config"/> on a sequence-classification model.</summary>
    public static string Write(LoraConfig config, string baseModelNameOrPath)
    {
        var json = new JsonObject
        {
            ["alpha_pattern"] = Pattern(config.AlphaPattern),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = baseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = JsonValue.Create(config.Alpha),
            ["lora_dropout"] = config.Dropout,
            ["modules_to_save"] = new JsonArray("classifier"),
            ["peft_type"] = "LORA",
            ["r"] = config.Rank,
            ["rank_pattern"] = Pattern(config.RankPattern),
            ["revision"] = null,
            ["target_modules"] = TargetModulesJson(config.TargetModules),
            ["task_type"] = "SEQ_CLS",
            ["use_dora"] = false,
            ["use_rslora"] = config.UseRsLora,
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// PEFT's <c>target_modules</c> for <paramref name="targets"/>: module names where they select exactly those layers
    /// (PEFT matches a name against the end of every module path, so <c>dense</c> would also catch the pooler and
    /// <c>output.dense</c> both output projections), else one regular expression that PEFT matches against the whole path.
    /// </summary>
    internal static JsonNode TargetModulesJson(LoraTargetModules targets)
    {
        var names = new List<string>();
        foreach (var kind in LoraModulePaths.Kinds.Where(k => (targets & k) != 0))
        {
            switch (kind)
            {
                case LoraTargetModules.Query: names.Add("query"); break;
                case LoraTargetModules.Key: names.Add("key"); break;
                case LoraTargetModules.Value: names.Add("value"); break;
                case LoraTargetModules.Intermediate: names.Add("intermediate.dense"); break;
                case LoraTargetModules.AttentionOutput when (targets & LoraTargetModules.Output) == 0: names.Add("attention.output.dense"); break;
                case LoraTargetModules.AttentionOutput: break;                       // "output.dense" below covers both
                case LoraTargetModules.Output when (targets & LoraTargetModules.AttentionOutput) != 0: names.Add("output.dense"); break;
                case LoraTargetModules.Output:
                    string alternatives = string.Join('|', LoraModulePaths.Kinds.Where(k => (targets & k) != 0).Select(k => Regex.Escape(LoraModulePaths.SuffixOf(k))));
                    return JsonValue.Create($@".*encoder\.layer\.\d+\.({alternatives})")!;
            }
        }
        return new JsonArray(names.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray());
    }

    private static JsonObject Pattern<T>(IReadOnlyDictionary<string, T>? pattern) =>
        new((pattern ?? new Dictionary<string, T>()).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value))));

    /// <summary>
    /// Reads <paramref name="json"/> (the text of <paramref name="file"/>) into a <see cref="LoraConfig"/> for an encoder of
    /// <paramref name="layerCount"/> transformer blocks. Refuses, naming the field, what cannot be honoured.
    /// </summary>
    public static LoraConfig Read(string json, string file, int layerCount)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{file}' is not valid JSON: {e.Message}", e);
        }
        using var _ = document;
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"'{file}' is not a JSON object.");

        string peftType = String(root, "peft_type", file) ?? "LORA";
        if (peftType != "LORA") Refuse(file, "peft_type", $"is \"{peftType}\"; only LoRA adapters can be loaded");
        if (Bool(root, "use_dora", file)) Refuse(file, "use_dora", "is true; DoRA's magnitude vectors are not supported");
        if (Bool(root, "lora_bias", file)) Refuse(file, "lora_bias", "is true; LoRA biases (lora_B.bias) are not supported");
        if (Bool(root, "fan_in_fan_out", file)) Refuse(file, "fan_in_fan_out", "is true; BERT's linear layers store weights as [out, in]");
        if (String(root, "bias", file) is { } bias && bias != "none") Refuse(file, "bias", $"is \"{bias}\"; only \"none\" (no trained biases) is supported");
        if (Present(root, "layers_to_transform")) Refuse(file, "layers_to_transform", "is set; adapters on some layers only are not supported");
        if (Present(root, "layers_pattern")) Refuse(file, "layers_pattern", "is set; adapters on some layers only are not supported");
        if (root.TryGetProperty("modules_to_save", out var save) && save.ValueKind == JsonValueKind.Array)
            foreach (var module in save.EnumerateArray())
                if (module.GetString() is { } name && !HeadModules.Contains(name))
                    Refuse(file, "modules_to_save", $"lists \"{name}\"; only the classification head (classifier) can be loaded beside the adapters");

        var rankPattern = ReadPattern(root, "rank_pattern", file, e => e.TryGetInt32(out int r) ? r : throw Bad(file, "rank_pattern", "must map names to integers"));
        var alphaPattern = ReadPattern(root, "alpha_pattern", file, e => e.TryGetDouble(out double a) ? a : throw Bad(file, "alpha_pattern", "must map names to numbers"));
        try
        {
            return new LoraConfig
            {
                Rank = root.TryGetProperty("r", out var r) && r.TryGetInt32(out int rank) ? rank : throw Bad(file, "r", "must be an integer"),
                Alpha = root.TryGetProperty("lora_alpha", out var a) && a.TryGetDouble(out double alpha) ? alpha : throw Bad(file, "lora_alpha", "must be a number"),
                Dropout = root.TryGetProperty("lora_dropout", out var d) && d.ValueKind == JsonValueKind.Number ? d.GetDouble() : 0,
                UseRsLora = Bool(root, "use_rslora", file),
                TargetModules = TargetModules(root, file, layerCount),
                RankPattern = rankPattern,
                AlphaPattern = alphaPattern,
            };
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new InvalidDataException($"'{file}': {e.Message}", e);
        }
    }

    /// <summary>
    /// PEFT's <c>target_modules</c> as <see cref="LoraTargetModules"/>, applying PEFT's rule to every adaptable layer:
    /// a list entry matches a module path equal to it or ending in <c>.entry</c>; a string is a regular expression the
    /// whole path must match. Each entry must match something, and what is matched must be whole kinds (every layer's query, ...).
    /// </summary>
    private static LoraTargetModules TargetModules(JsonElement root, string file, int layerCount)
    {
        if (!root.TryGetProperty("target_modules", out var targets) || targets.ValueKind == JsonValueKind.Null)
            throw Bad(file, "target_modules", "is missing");
        // PEFT sees the layers under Hugging Face's BertForSequenceClassification ("bert.encoder...") or a bare BertModel ("encoder...").
        var candidates = Enumerable.Range(0, layerCount)
            .SelectMany(i => LoraModulePaths.Kinds.Select(k => (Path: LoraModulePaths.PathOf(i, k), Kind: k)))
            .ToList();
        static IEnumerable<string> Spellings(string path) => [path, "bert." + path];
        var matched = new HashSet<string>(StringComparer.Ordinal);
        switch (targets.ValueKind)
        {
            case JsonValueKind.String:
                string pattern = targets.GetString()!;
                Regex regex;
                try
                {
                    regex = new Regex($"^(?:{pattern})$", RegexOptions.CultureInvariant);
                }
                catch (ArgumentException e)
                {
                    throw Bad(file, "target_modules", $"\"{pattern}\" is not a regular expression .NET can read ({e.Message})");
                }
                matched.UnionWith(candidates.Where(c => Spellings(c.Path).Any(regex.IsMatch)).Select(c => c.Path));
                if (matched.Count == 0) throw Unsupported(file, "target_modules", $"\"{pattern}\" matches no linear layer of the encoder");
                break;
            case JsonValueKind.Array:
                foreach (var entry in targets.EnumerateArray())
                {
                    string name = entry.GetString() ?? "";
                    var hits = candidates.Where(c => Spellings(c.Path).Any(p => p == name || p.EndsWith("." + name, StringComparison.Ordinal))).ToList();
                    if (hits.Count == 0)
                        throw Unsupported(file, "target_modules", $"names \"{name}\", which the encoder does not have (its adaptable layers are " +
                                                         $"{string.Join(", ", LoraModulePaths.Kinds.Select(LoraModulePaths.SuffixOf))} in each of its {layerCount} blocks)");
                    matched.UnionWith(hits.Select(h => h.Path));
                }
                break;
            default:
                throw Bad(file, "target_modules", "must be a list of module names or a regular expression");
        }
        var kinds = LoraTargetModules.None;
        foreach (var kind in LoraModulePaths.Kinds)
        {
            var ofKind = candidates.Where(c => c.Kind == kind).Select(c => c.Path).ToList();
            int count = ofKind.Count(matched.Contains);
            if (count == 0) continue;
            if (count != ofKind.Count)
                throw Unsupported(file, "target_modules", $"selects {LoraModulePaths.SuffixOf(kind)} in some blocks only ({string.Join(", ", ofKind.Where(matched.Contains))}); " +
                                                  "adapters on some layers only are not supported");
            kinds |= kind;
        }
        return kinds;
    }

    private static Dictionary<string, T>? ReadPattern<T>(JsonElement root, string name, string file, Func<JsonElement, T> read)
    {
        if (!root.TryGetProperty(name, out var pattern) || pattern.ValueKind == JsonValueKind.Null) return null;
        if (pattern.ValueKind != JsonValueKind.Object) throw Bad(file, name, "must be an object");
        var map = pattern.EnumerateObject().ToDictionary(p => p.Name, p => read(p.Value), StringComparer.Ordinal);
        return map.Count == 0 ? null : map;
    }

    private static bool Present(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null && !(value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 0);

    private static bool Bool(JsonElement root, string name, string file) =>
        root.TryGetProperty(name, out var value) && value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False or JsonValueKind.Null => false,
            _ => throw Bad(file, name, "must be true or false"),
        };

    private static string? String(JsonElement root, string name, string file) =>
        !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString() : throw Bad(file, name, "must be a string");

    private static void Refuse(string file, string field, string why) => throw Unsupported(file, field, why);

    private static NotSupportedException Unsupported(string file, string field, string why) => new($"'{file}': {field} {why}.");

    private static InvalidDataException Bad(string file, string field, string why) => new($"'{file}': {field} {why}.");
}
