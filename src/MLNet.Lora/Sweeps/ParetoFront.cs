namespace MLNet.Lora.Sweeps;

/// <summary>
/// The Pareto front of sweep trials: those that no other trial dominates. Objectives: the metric (higher is better),
/// trainable parameters (fewer is better), and forgetting (lower is better) when every scored trial has it.
/// </summary>
public static class ParetoFront
{
    /// <summary>
    /// For each trial, whether it is on the front. Failed trials never are. Trials with equal objectives do not dominate
    /// each other, so ties are all on the front.
    /// </summary>
    public static bool[] Mark(IReadOnlyList<LoraSweepTrial> trials, SweepMetric metric = SweepMetric.Accuracy)
    {
        ArgumentNullException.ThrowIfNull(trials);
        var scored = Enumerable.Range(0, trials.Count).Where(i => trials[i].Succeeded && !double.IsNaN(trials[i].Score(metric))).ToList();
        // Forgetting is an objective only when every scored trial has it: a missing value cannot be compared.
        bool withForgetting = scored.Count > 0 && scored.All(i => trials[i].Forgetting is { } f && !double.IsNaN(f));
        var front = new bool[trials.Count];
        foreach (int i in scored)
            front[i] = !scored.Any(j => j != i && Dominates(trials[j], trials[i], metric, withForgetting));
        return front;
    }

    /// <summary>The trials on the front, in their original order.</summary>
    public static IReadOnlyList<LoraSweepTrial> Of(IReadOnlyList<LoraSweepTrial> trials, SweepMetric metric = SweepMetric.Accuracy)
    {
        var marks = Mark(trials, metric);
        return trials.Where((_, i) => marks[i]).ToList();
    }

    /// <summary>Whether <paramref name="a"/> is at least as good as <paramref name="b"/> on every objective and better on one.</summary>
    public static bool Dominates(LoraSweepTrial a, LoraSweepTrial b, SweepMetric metric, bool withForgetting)
    {
        double scoreA = a.Score(metric), scoreB = b.Score(metric);
        bool noWorse = scoreA >= scoreB && a.TrainableParameters <= b.TrainableParameters;
        bool better = scoreA > scoreB || a.TrainableParameters < b.TrainableParameters;
        if (withForgetting)
        {
            double forgetA = a.Forgetting!.Value, forgetB = b.Forgetting!.Value;
            noWorse &= forgetA <= forgetB;
            better |= forgetA < forgetB;
        }
        return noWorse && better;
    }
}
