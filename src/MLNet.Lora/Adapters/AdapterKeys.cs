namespace MLNet.Lora.Adapters;

/// <summary>How adapter factors are named in a saved state.</summary>
internal enum AdapterKeyStyle
{
    /// <summary>As PEFT saves them: <c>{path}.lora_A.weight</c>, without the adapter's name.</summary>
    Peft,

    /// <summary>As the module tree names them: <c>{path}.lora_A.{adapter}.weight</c> (what format 1 of the adapter zip wrote).</summary>
    WithAdapterName,
}

/// <summary>The names of adapter factors in saved states: the one place that spells <c>lora_A</c> and <c>lora_B</c>.</summary>
internal static class AdapterKeys
{
    public const string FactorA = "lora_A";
    public const string FactorB = "lora_B";

    /// <summary>The key of factor A of the layer at <paramref name="path"/>.</summary>
    public static string A(string path, string adapterName, AdapterKeyStyle style) => Key(path, FactorA, adapterName, style);

    /// <summary>The key of factor B of the layer at <paramref name="path"/>.</summary>
    public static string B(string path, string adapterName, AdapterKeyStyle style) => Key(path, FactorB, adapterName, style);

    private static string Key(string path, string factor, string adapterName, AdapterKeyStyle style) => style switch
    {
        AdapterKeyStyle.WithAdapterName => $"{path}.{factor}.{adapterName}.weight",
        _ => $"{path}.{factor}.weight",
    };
}
