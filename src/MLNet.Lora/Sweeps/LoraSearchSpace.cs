using MLNet.Lora.Adapters;
using MLNet.Lora.Training;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// The LoRA settings a sweep tries: every combination of <see cref="Ranks"/>, <see cref="Alphas"/>,
/// <see cref="TargetModuleSets"/> and <see cref="LearningRates"/> (a grid of discrete choices). Everything else comes from
/// the sweep's <see cref="LoraSweepOptions.BaseOptions"/>.
/// </summary>
/// <remarks>
/// Each dimension is a list of choices, which is what an AutoML <c>SearchSpace</c> of <c>ChoiceOption</c>s holds; see
/// <see cref="LoraTrialSettings.ToParameters"/> and <see cref="LoraTrialSettings.FromParameters"/> for the flat parameter form.
/// </remarks>
public sealed class LoraSearchSpace
{
    /// <summary>LoRA ranks to try; default 2, 4, 8, 16.</summary>
    public IReadOnlyList<int> Ranks { get; init; } = [2, 4, 8, 16];

    /// <summary>How alpha follows the rank; default alpha = 2 × rank.</summary>
    public IReadOnlyList<AlphaSetting> Alphas { get; init; } = [AlphaSetting.TimesRank(2)];

    /// <summary>Sets of adapted modules to try; default query and value.</summary>
    public IReadOnlyList<LoraTargetModules> TargetModuleSets { get; init; } = [LoraTargetModules.Query | LoraTargetModules.Value];

    /// <summary>Peak learning rates to try; default 2e-3 (the trainer's LoRA default).</summary>
    public IReadOnlyList<double> LearningRates { get; init; } = [FineTuningSettings.DefaultLoraLearningRate];

    /// <summary>A space over ranks alone, other settings at their defaults.</summary>
    public static LoraSearchSpace OverRanks(params int[] ranks) => new() { Ranks = ranks };

    /// <summary>Number of points: the product of the dimensions' sizes.</summary>
    public int Count => Ranks.Count * Alphas.Count * TargetModuleSets.Count * LearningRates.Count;

    /// <summary>Every point, ranks outermost (so that results group by rank), then alpha, modules and learning rate.</summary>
    public IEnumerable<LoraTrialSettings> Points()
    {
        Validate();
        foreach (int rank in Ranks)
            foreach (var alpha in Alphas)
                foreach (var modules in TargetModuleSets)
                    foreach (double rate in LearningRates)
                        yield return new LoraTrialSettings(rank, alpha, modules, rate);
    }

    /// <summary>Checks every choice; the exception names the property and the bad value.</summary>
    public LoraSearchSpace Validate()
    {
        static void Check(bool ok, string name, object? value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"{nameof(LoraSearchSpace)}.{name} {rule} (was {value}).");
        }
        Check(Ranks is { Count: > 0 }, nameof(Ranks), Ranks?.Count, "must list at least one rank");
        Check(Alphas is { Count: > 0 }, nameof(Alphas), Alphas?.Count, "must list at least one alpha setting");
        Check(TargetModuleSets is { Count: > 0 }, nameof(TargetModuleSets), TargetModuleSets?.Count, "must list at least one module set");
        Check(LearningRates is { Count: > 0 }, nameof(LearningRates), LearningRates?.Count, "must list at least one learning rate");
        foreach (int rank in Ranks!) Check(rank > 0, nameof(Ranks), rank, "must hold positive ranks");
        foreach (var alpha in Alphas!) Check(alpha.Value > 0, nameof(Alphas), alpha, "must hold positive settings (use AlphaSetting.Fixed or TimesRank)");
        foreach (var modules in TargetModuleSets!)
            Check(modules != LoraTargetModules.None && (modules & ~LoraTargetModules.All) == 0, nameof(TargetModuleSets), modules, "must name at least one module in each set");
        foreach (double rate in LearningRates!) Check(rate > 0 && double.IsFinite(rate), nameof(LearningRates), rate, "must hold positive learning rates");
        Check(Ranks.Distinct().Count() == Ranks.Count, nameof(Ranks), string.Join(",", Ranks), "must not repeat a rank");
        return this;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"ranks [{string.Join(", ", Ranks)}] × alpha [{string.Join(", ", Alphas)}] × modules [{string.Join("; ", TargetModuleSets.Select(LoraTrialSettings.FormatModules))}] " +
        $"× learning rate [{string.Join(", ", LearningRates.Select(r => r.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)))}] = {Count} points";
}
