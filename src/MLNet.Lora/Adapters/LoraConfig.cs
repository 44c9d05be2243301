using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace MLNet.Lora.Adapters;

/// <summary>
/// Settings of one LoRA adapter (Hu et al. 2021): the update to a weight W is ΔW = scaling · B·A with
/// A ∈ R^{r×in}, B ∈ R^{out×r}, and scaling = alpha / r (or alpha / √r with rsLoRA, Kalajdzievski 2023).
/// The one description of an adapter: built once, checked as it is built (an invalid config cannot exist), and passed
/// whole to injection, training, saving and the PEFT files.
/// </summary>
/// <example>
/// <code>
/// var config = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = LoraTargetModules.Query | LoraTargetModules.Value };
/// LoraInjector.Inject(encoder.Model, config);
/// </code>
/// </example>
public sealed record LoraConfig
{
    private readonly int rank = 8;
    private readonly double alpha = 16;
    private readonly double dropout;
    private readonly LoraTargetModules targetModules = LoraTargetModules.Query | LoraTargetModules.Value;
    private readonly IReadOnlyDictionary<string, int>? rankPattern;
    private readonly IReadOnlyDictionary<string, double>? alphaPattern;

    /// <summary>Rank r of the update (of every adapted layer that <see cref="RankPattern"/> does not name).</summary>
    public int Rank
    {
        get => rank;
        init => rank = value > 0 ? value : throw Invalid(nameof(Rank), value);
    }

    /// <summary>Scale numerator alpha (of every adapted layer that <see cref="AlphaPattern"/> does not name).</summary>
    public double Alpha
    {
        get => alpha;
        init => alpha = value > 0 && double.IsFinite(value) ? value : throw Invalid(nameof(Alpha), value);
    }

    /// <summary>Dropout on the adapter's input while training.</summary>
    public double Dropout
    {
        get => dropout;
        init => dropout = value >= 0 && value < 1 ? value : throw Invalid(nameof(Dropout), value);
    }

    /// <summary>Which linear layers get an adapter.</summary>
    [JsonConverter(typeof(JsonStringEnumConverter<LoraTargetModules>))]
    public LoraTargetModules TargetModules
    {
        get => targetModules;
        init => targetModules = value != LoraTargetModules.None && (value & ~LoraTargetModules.All) == 0 ? value : throw Invalid(nameof(TargetModules), value);
    }

    /// <summary>Use rank-stabilised scaling alpha / √r instead of alpha / r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>
    /// Per-layer ranks, as PEFT's <c>rank_pattern</c>: a key (a module name or a regular expression) applies to the
    /// module paths it matches at their end, <c>(.*\.)?key</c>; the first matching key wins. Null or empty: <see cref="Rank"/> everywhere.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, int>? RankPattern
    {
        get => rankPattern;
        init => rankPattern = value is null || value.All(p => p.Value > 0) ? value : throw Invalid(nameof(RankPattern), value.First(p => p.Value <= 0));
    }

    /// <summary>Per-layer alphas, as PEFT's <c>alpha_pattern</c> (matched as <see cref="RankPattern"/>).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, double>? AlphaPattern
    {
        get => alphaPattern;
        init => alphaPattern = value is null || value.All(p => p.Value > 0 && double.IsFinite(p.Value)) ? value
            : throw Invalid(nameof(AlphaPattern), value.First(p => !(p.Value > 0 && double.IsFinite(p.Value))));
    }

    /// <summary>The factor applied to B·A where neither pattern applies.</summary>
    [JsonIgnore]
    public double Scaling => ScalingOf(Rank, Alpha);

    /// <summary>The rank of the layer at <paramref name="modulePath"/> (for example <c>encoder.layer.0.attention.self.query</c>).</summary>
    public int RankFor(string modulePath) => Match(RankPattern, modulePath, out int r) ? r : Rank;

    /// <summary>The alpha of the layer at <paramref name="modulePath"/>.</summary>
    public double AlphaFor(string modulePath) => Match(AlphaPattern, modulePath, out double a) ? a : Alpha;

    /// <summary>The factor applied to B·A in the layer at <paramref name="modulePath"/>: its alpha over its rank (or √rank with rsLoRA).</summary>
    public double ScalingFor(string modulePath) => ScalingOf(RankFor(modulePath), AlphaFor(modulePath));

    private double ScalingOf(int r, double a) => UseRsLora ? a / Math.Sqrt(r) : a / r;

    /// <summary>
    /// PEFT's rule (<c>get_pattern_key</c>): the first key that matches the end of the path after a dot. A path is tried
    /// as Hugging Face's <c>BertForSequenceClassification</c> names it (<c>bert.encoder...</c>) and as a bare encoder's.
    /// </summary>
    private static bool Match<T>(IReadOnlyDictionary<string, T>? pattern, string modulePath, out T value)
    {
        value = default!;
        if (pattern is null) return false;
        foreach (var (key, v) in pattern)
        {
            // The static IsMatch caches compiled patterns: a combined adapter has one key per layer, matched per layer.
            string regex = $"^(.*\\.)?({key})$";
            if (Regex.IsMatch(modulePath, regex, RegexOptions.CultureInvariant) || Regex.IsMatch("bert." + modulePath, regex, RegexOptions.CultureInvariant))
            {
                value = v;
                return true;
            }
        }
        return false;
    }

    /// <summary>What each setting must be (the error text, also used by the trainer's options).</summary>
    internal static string RuleOf(string setting) => setting switch
    {
        nameof(Rank) => "must be positive",
        nameof(Alpha) => "must be a positive number",
        nameof(Dropout) => "must be in [0, 1)",
        nameof(TargetModules) => "must name at least one of Query, Key, Value, AttentionOutput, Intermediate, Output",
        nameof(RankPattern) => "must give positive ranks",
        nameof(AlphaPattern) => "must give positive alphas",
        _ => "is invalid",
    };

    private static ArgumentOutOfRangeException Invalid(string setting, object? value) =>
        new(setting, value, $"LoRA {setting} {RuleOf(setting)}.");
}
