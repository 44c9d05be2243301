namespace MLNet.Lora.Adapters;

/// <summary>
/// The weight matrices of a BERT layer that LoRA can adapt. Combine with <c>|</c>; the default,
/// <see cref="Query"/> | <see cref="Value"/>, is the original LoRA paper's choice (Hu et al. 2021).
/// </summary>
[Flags]
public enum LoraTargetModules
{
    /// <summary>No module.</summary>
    None = 0,

    /// <summary><c>attention.self.query</c>.</summary>
    Query = 1,

    /// <summary><c>attention.self.key</c>.</summary>
    Key = 2,

    /// <summary><c>attention.self.value</c>.</summary>
    Value = 4,

    /// <summary><c>attention.output.dense</c>: the attention's output projection.</summary>
    AttentionOutput = 8,

    /// <summary><c>intermediate.dense</c>: the feed-forward expansion.</summary>
    Intermediate = 16,

    /// <summary><c>output.dense</c>: the feed-forward projection back.</summary>
    Output = 32,

    /// <summary>Query, key and value.</summary>
    AllAttention = Query | Key | Value | AttentionOutput,

    /// <summary>Every linear layer of every transformer block.</summary>
    All = AllAttention | Intermediate | Output,
}

/// <summary>Maps module paths of a BERT encoder to <see cref="LoraTargetModules"/> kinds.</summary>
internal static class LoraModulePaths
{
    /// <summary>Every single kind, in the order of a layer's forward pass.</summary>
    public static IReadOnlyList<LoraTargetModules> Kinds { get; } =
    [
        LoraTargetModules.Query, LoraTargetModules.Key, LoraTargetModules.Value,
        LoraTargetModules.AttentionOutput, LoraTargetModules.Intermediate, LoraTargetModules.Output,
    ];

    /// <summary>The path of the <paramref name="kind"/> layer of transformer block <paramref name="layer"/>, for example <c>encoder.layer.0.attention.self.query</c>.</summary>
    public static string PathOf(int layer, LoraTargetModules kind) => $"encoder.layer.{layer}.{SuffixOf(kind)}";

    /// <summary>The module path of <paramref name="kind"/> inside a transformer block, as Hugging Face names it (<c>attention.self.query</c>).</summary>
    public static string SuffixOf(LoraTargetModules kind) => kind switch
    {
        LoraTargetModules.Query => "attention.self.query",
        LoraTargetModules.Key => "attention.self.key",
        LoraTargetModules.Value => "attention.self.value",
        LoraTargetModules.AttentionOutput => "attention.output.dense",
        LoraTargetModules.Intermediate => "intermediate.dense",
        LoraTargetModules.Output => "output.dense",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Name one module kind."),
    };

    /// <summary>
    /// The kind of the linear layer at <paramref name="path"/> (for example <c>encoder.layer.3.attention.self.query</c>),
    /// or <see cref="LoraTargetModules.None"/> when the path is not one of a layer's linear layers.
    /// </summary>
    public static LoraTargetModules KindOf(string path)
    {
        // Paths may carry a prefix (such as "bert."); what matters is the part after "encoder.layer.N.".
        const string marker = "encoder.layer.";
        int at = path.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0) return LoraTargetModules.None;
        string rest = path[(at + marker.Length)..];
        int dot = rest.IndexOf('.');
        if (dot < 0 || !int.TryParse(rest[..dot], out _)) return LoraTargetModules.None;
        string suffix = rest[(dot + 1)..];
        return Kinds.FirstOrDefault(k => SuffixOf(k) == suffix);
    }
}
