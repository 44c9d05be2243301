using MLNet.Lora.Adapters;

namespace MLNet.Lora.Peft;

/// <summary>
/// Maps PEFT's tensor names to this package's and back. PEFT saves a <c>BertForSequenceClassification</c> adapter as
/// <c>base_model.model.bert.encoder.layer.{i}.attention.self.query.lora_A.weight</c> ([r, in]) and <c>.lora_B.weight</c>
/// ([out, r]), and the head as <c>base_model.model.classifier.weight</c> / <c>.bias</c>; an adapter on a bare
/// <c>BertModel</c> has no <c>bert.</c>. Inside this package the adapter's keys are the encoder's module paths
/// (<c>encoder.layer.0.attention.self.query.lora_A.weight</c>, <see cref="AdapterKeyStyle.Peft"/>) and the head's are <c>classifier.*</c>.
/// </summary>
internal static class PeftKeyMap
{
    /// <summary>What PEFT puts before every key: the <c>PeftModel</c>'s <c>base_model</c> (the LoRA model) and its <c>model</c>.</summary>
    public const string Root = "base_model.model.";

    /// <summary>Where the encoder sits in Hugging Face's <c>BertForSequenceClassification</c>.</summary>
    public const string EncoderPrefix = "bert.";

    /// <summary>The head's module name in <c>BertForSequenceClassification</c> (and in <see cref="Training.TextClassificationModel"/>).</summary>
    public const string Head = "classifier";

    /// <summary>The PEFT key of an encoder adapter key (<c>encoder.layer...lora_A.weight</c>).</summary>
    public static string ToPeft(string encoderKey) => Root + EncoderPrefix + encoderKey;

    /// <summary>The PEFT key of the head's <paramref name="leaf"/> (<c>weight</c> or <c>bias</c>).</summary>
    public static string HeadToPeft(string leaf) => $"{Root}{Head}.{leaf}";

    /// <summary>What a PEFT key names.</summary>
    public enum Role
    {
        /// <summary>A factor of an encoder adapter: the mapped key is the encoder's adapter key.</summary>
        Adapter,

        /// <summary>The classification head: the mapped key is <c>weight</c> or <c>bias</c>.</summary>
        Head,
    }

    /// <summary>
    /// Maps a key of a PEFT file onto this package's names for an encoder of <paramref name="layerCount"/> blocks, or
    /// throws <see cref="NotSupportedException"/> naming the key and why it cannot be honoured.
    /// </summary>
    public static (Role Role, string Key, string ModulePath) FromPeft(string key, int layerCount, string file)
    {
        if (!key.StartsWith(Root, StringComparison.Ordinal))
            throw Refused(key, file, $"is not a PEFT key (PEFT's keys start with '{Root}')");
        string rest = key[Root.Length..];
        if (rest is $"{Head}.weight" or $"{Head}.bias") return (Role.Head, rest[(Head.Length + 1)..], Head);

        if (key.Contains(".lora_magnitude_vector", StringComparison.Ordinal))
            throw Refused(key, file, "is a DoRA magnitude vector (use_dora); DoRA adapters are not supported");
        if (key.Contains(".lora_embedding_", StringComparison.Ordinal))
            throw Refused(key, file, "adapts an embedding layer; only the encoder blocks' linear layers can carry adapters");
        if (rest.StartsWith(EncoderPrefix, StringComparison.Ordinal)) rest = rest[EncoderPrefix.Length..];

        foreach (string factor in new[] { AdapterKeys.FactorA, AdapterKeys.FactorB })
        {
            string marker = $".{factor}.";
            int at = rest.IndexOf(marker, StringComparison.Ordinal);
            if (at < 0) continue;
            string path = rest[..at], leaf = rest[(at + marker.Length)..];
            if (leaf == "bias") throw Refused(key, file, "is a LoRA bias (lora_bias); LoRA biases are not supported");
            if (leaf != "weight") throw Refused(key, file, $"has '{leaf}' after {factor} where PEFT writes 'weight'");
            if (LoraModulePaths.KindOf(path) == LoraTargetModules.None || !path.StartsWith("encoder.layer.", StringComparison.Ordinal))
                throw Refused(key, file, $"adapts '{path}', which is not one of the encoder's adaptable layers " +
                                         $"({string.Join(", ", LoraModulePaths.Kinds.Select(LoraModulePaths.SuffixOf))} of a block)");
            int layer = int.Parse(path.Split('.')[2], System.Globalization.CultureInfo.InvariantCulture);
            if (layer >= layerCount)
                throw Refused(key, file, $"adapts block {layer}, but the encoder has {layerCount} blocks (0 to {layerCount - 1})");
            return (Role.Adapter, factor == AdapterKeys.FactorA ? AdapterKeys.A(path, "", AdapterKeyStyle.Peft) : AdapterKeys.B(path, "", AdapterKeyStyle.Peft), path);
        }
        throw Refused(key, file, $"is neither a LoRA factor nor the classification head ('{Root}{Head}.weight'); " +
                                 "trained copies of other modules (modules_to_save) are not supported");
    }

    private static NotSupportedException Refused(string key, string file, string why) => new($"'{file}': tensor '{key}' {why}.");
}
