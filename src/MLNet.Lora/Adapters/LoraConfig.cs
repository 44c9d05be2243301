using System.Text.Json.Serialization;

namespace MLNet.Lora.Adapters;

/// <summary>
/// Settings of one LoRA adapter (Hu et al. 2021): the update to a weight W is ΔW = scaling · B·A with
/// A ∈ R^{r×in}, B ∈ R^{out×r}, and scaling = alpha / r (or alpha / √r with rsLoRA, Kalajdzievski 2023).
/// </summary>
/// <example>
/// <code>
/// var config = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = LoraTargetModules.Query | LoraTargetModules.Value };
/// LoraInjector.Inject(encoder.Model, config);
/// </code>
/// </example>
public sealed record LoraConfig
{
    /// <summary>Rank r of the update.</summary>
    public int Rank { get; init; } = 8;

    /// <summary>Scale numerator alpha.</summary>
    public double Alpha { get; init; } = 16;

    /// <summary>Dropout on the adapter's input while training.</summary>
    public double Dropout { get; init; }

    /// <summary>Which linear layers get an adapter.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<LoraTargetModules>))]
    public LoraTargetModules TargetModules { get; init; } = LoraTargetModules.Query | LoraTargetModules.Value;

    /// <summary>Use rank-stabilised scaling alpha / √r instead of alpha / r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>The factor applied to B·A.</summary>
    [JsonIgnore]
    public double Scaling => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public LoraConfig Validate()
    {
        if (Rank <= 0) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, "LoRA rank must be positive.");
        if (!(Alpha > 0) || double.IsInfinity(Alpha)) throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "LoRA alpha must be a positive number.");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "LoRA dropout must be in [0, 1).");
        if (TargetModules == LoraTargetModules.None || (TargetModules & ~LoraTargetModules.All) != 0)
            throw new ArgumentOutOfRangeException(nameof(TargetModules), TargetModules, "Name at least one of Query, Key, Value, AttentionOutput, Intermediate, Output.");
        return this;
    }
}
