using System.Globalization;
using System.Reflection;
using MLNet.Lora.Adapters;
using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>One point of a <see cref="LoraSearchSpace"/>: the LoRA settings a trial trains with.</summary>
/// <param name="Rank">LoRA rank r.</param>
/// <param name="AlphaSetting">How alpha is set; <see cref="Alpha"/> is the value for <paramref name="Rank"/>.</param>
/// <param name="TargetModules">The adapted modules.</param>
/// <param name="LearningRate">Peak learning rate.</param>
public sealed record LoraTrialSettings(int Rank, AlphaSetting AlphaSetting, LoraTargetModules TargetModules, double LearningRate)
{
    /// <summary>Parameter name of the rank in <see cref="ToParameters"/>.</summary>
    public const string RankParameter = "rank";

    /// <summary>Parameter name of the alpha setting (<c>16</c> or <c>2r</c>).</summary>
    public const string AlphaParameter = "alpha";

    /// <summary>Parameter name of the target modules (<c>Query|Value</c>).</summary>
    public const string TargetModulesParameter = "target_modules";

    /// <summary>Parameter name of the learning rate.</summary>
    public const string LearningRateParameter = "learning_rate";

    /// <summary>LoRA alpha for this rank.</summary>
    public double Alpha => AlphaSetting.Resolve(Rank);

    /// <summary>
    /// A copy of <paramref name="template"/> with this point's rank, alpha, modules and learning rate, LoRA mode and
    /// <paramref name="epochs"/> epochs. The template is not changed.
    /// </summary>
    public LoraTextClassificationTrainer.Options ApplyTo(LoraTextClassificationTrainer.Options template, int epochs)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1);
        var options = Copy(template);
        options.Mode = FineTuningMode.Lora;
        options.Rank = Rank;
        options.Alpha = Alpha;
        options.TargetModules = TargetModules;
        options.LearningRate = LearningRate;
        options.MaxEpochs = epochs;
        return options;
    }

    /// <summary>
    /// The point as flat named parameters (<c>rank</c>, <c>alpha</c>, <c>target_modules</c>, <c>learning_rate</c>):
    /// the shape of an AutoML trial's parameter set and of the sweep's CSV columns.
    /// </summary>
    public IReadOnlyDictionary<string, object> ToParameters() => new Dictionary<string, object>
    {
        [RankParameter] = Rank,
        [AlphaParameter] = AlphaSetting.ToString(),
        [TargetModulesParameter] = FormatModules(TargetModules),
        [LearningRateParameter] = LearningRate,
    };

    /// <summary>Reads <see cref="ToParameters"/>'s form back (values may be numbers or their invariant-culture text).</summary>
    public static LoraTrialSettings FromParameters(IReadOnlyDictionary<string, object> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        string Get(string name) => parameters.TryGetValue(name, out var value) && value is not null
            ? Convert.ToString(value, CultureInfo.InvariantCulture)!
            : throw new ArgumentException($"The parameter '{name}' is missing.", nameof(parameters));
        return new LoraTrialSettings(
            int.Parse(Get(RankParameter), CultureInfo.InvariantCulture),
            AlphaSetting.Parse(Get(AlphaParameter)),
            ParseModules(Get(TargetModulesParameter)),
            double.Parse(Get(LearningRateParameter), NumberStyles.Float, CultureInfo.InvariantCulture));
    }

    /// <summary><c>Query|Value</c>: the flags joined by <c>|</c> (no commas, so the text sits in a CSV cell as it is).</summary>
    public static string FormatModules(LoraTargetModules modules) =>
        modules == LoraTargetModules.None ? "None"
        : string.Join('|', Enum.GetValues<LoraTargetModules>()
            .Where(m => m is not (LoraTargetModules.None or LoraTargetModules.AllAttention or LoraTargetModules.All) && modules.HasFlag(m)));

    /// <summary>Reads <see cref="FormatModules"/>'s form (names joined by <c>|</c> or <c>,</c>).</summary>
    public static LoraTargetModules ParseModules(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        var result = LoraTargetModules.None;
        foreach (string part in text.Split(['|', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Enum.TryParse<LoraTargetModules>(part, ignoreCase: true, out var module))
                throw new FormatException($"'{part}' is not a LoRA target module; use {string.Join(", ", Enum.GetNames<LoraTargetModules>())}.");
            result |= module;
        }
        return result;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"r={Rank} alpha={Alpha.ToString("G4", CultureInfo.InvariantCulture)} modules={FormatModules(TargetModules)} lr={LearningRate.ToString("G3", CultureInfo.InvariantCulture)}";

    // Options is a class of public fields with no copy method; copying every public field keeps this right when fields are added.
    private static LoraTextClassificationTrainer.Options Copy(LoraTextClassificationTrainer.Options template)
    {
        var copy = new LoraTextClassificationTrainer.Options();
        foreach (var field in typeof(LoraTextClassificationTrainer.Options).GetFields(BindingFlags.Public | BindingFlags.Instance))
            if (!field.IsInitOnly) field.SetValue(copy, field.GetValue(template));
        return copy;
    }
}
