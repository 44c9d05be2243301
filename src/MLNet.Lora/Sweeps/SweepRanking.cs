namespace MLNet.Lora.Sweeps;

/// <summary>
/// How a sweep ranks its trials: the best model, successive halving's survivors, and the final marks (Pareto front,
/// best, promoted). Shared by the in-process sweep and the sharded sweep's merge and promote steps, so both decide alike.
/// </summary>
internal static class SweepRanking
{
    /// <summary>Ranks trials for the best model: the metric, then fewer trainable parameters, then more epochs (an earlier trial wins a full tie).</summary>
    public static bool IsBetter(LoraSweepTrial candidate, LoraSweepTrial incumbent, SweepMetric metric)
    {
        double a = candidate.Score(metric), b = incumbent.Score(metric);
        if (a != b) return a > b;
        if (candidate.TrainableParameters != incumbent.TrainableParameters) return candidate.TrainableParameters < incumbent.TrainableParameters;
        return candidate.Epochs > incumbent.Epochs;
    }

    /// <summary>The best succeeded trial, visiting trials in number order (the order an in-process sweep trains them).</summary>
    public static LoraSweepTrial? Best(IEnumerable<LoraSweepTrial> trials, SweepMetric metric)
    {
        LoraSweepTrial? best = null;
        foreach (var trial in trials.OrderBy(t => t.Number))
            if (trial.Succeeded && (best is null || IsBetter(trial, best, metric))) best = trial;
        return best;
    }

    /// <summary>
    /// Successive halving's survivors of one round: its <paramref name="count"/> best succeeded trials by the metric
    /// (ties: fewer trainable parameters, then the earlier trial), best first: the order the next round trains them in.
    /// </summary>
    public static IReadOnlyList<LoraSweepTrial> Survivors(IEnumerable<LoraSweepTrial> roundTrials, int count, SweepMetric metric) =>
        roundTrials.Where(t => t.Succeeded)
            .OrderByDescending(t => t.Score(metric))
            .ThenBy(t => t.TrainableParameters)
            .ThenBy(t => t.Number)
            .Take(count)
            .ToList();

    /// <summary>The trials in number order with the Pareto front and the best trial (<paramref name="bestNumber"/>) marked.</summary>
    public static IReadOnlyList<LoraSweepTrial> Mark(IEnumerable<LoraSweepTrial> trials, SweepMetric metric, int bestNumber)
    {
        var ordered = trials.OrderBy(t => t.Number).ToList();
        var front = ParetoFront.Mark(ordered, metric);
        return ordered.Select((t, i) => t with { IsParetoOptimal = front[i], IsBest = t.Number == bestNumber }).ToList();
    }
}
