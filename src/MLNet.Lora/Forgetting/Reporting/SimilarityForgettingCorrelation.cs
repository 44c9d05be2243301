namespace MLNet.Lora.Forgetting;

/// <summary>One (task pair, similarity, forgetting) observation.</summary>
/// <param name="Label">The pair, for instance "sst2 → ag_news".</param>
/// <param name="Similarity">The pair's similarity.</param>
/// <param name="Forgetting">The forgetting of the first task attributed to training on (or towards) the second.</param>
public sealed record CorrelationPoint(string Label, double Similarity, double Forgetting);

/// <summary>
/// Whether forgetting grows with task similarity, across task pairs: Pearson's r and Spearman's ρ between a similarity
/// measure and the forgetting it is paired with. With few pairs these are anecdotes, not estimates: see <see cref="Points"/>.
/// </summary>
public sealed record SimilarityForgettingCorrelation
{
    /// <summary>Where the points come from, for instance "sequence Full" or "retention LoRA fine-tune".</summary>
    public required string Source { get; init; }

    /// <summary>"representation" (<see cref="TaskSimilarityResult.RepresentationSimilarity"/>) or "gradient" (<see cref="TaskSimilarityResult.GradientCosine"/>).</summary>
    public required string SimilarityMeasure { get; init; }

    /// <summary>What the forgetting values are (which drop, which convention).</summary>
    public required string ForgettingMeasure { get; init; }

    /// <summary>The observations.</summary>
    public required IReadOnlyList<CorrelationPoint> Points { get; init; }

    /// <summary>Pearson's r; NaN with fewer than 3 points (two points always give ±1) or when a side has no variance.</summary>
    public double Pearson { get; init; }

    /// <summary>Spearman's ρ; NaN under the same conditions as <see cref="Pearson"/>.</summary>
    public double Spearman { get; init; }

    /// <summary>Builds the correlation from its points.</summary>
    /// <param name="source">See <see cref="Source"/>.</param>
    /// <param name="similarityMeasure">See <see cref="SimilarityMeasure"/>.</param>
    /// <param name="forgettingMeasure">See <see cref="ForgettingMeasure"/>.</param>
    /// <param name="points">The observations; non-finite ones are dropped.</param>
    public static SimilarityForgettingCorrelation From(string source, string similarityMeasure, string forgettingMeasure, IEnumerable<CorrelationPoint> points)
    {
        var list = points.Where(p => double.IsFinite(p.Similarity) && double.IsFinite(p.Forgetting)).ToList();
        double pearson = double.NaN, spearman = double.NaN;
        if (list.Count >= 3)
        {
            var x = list.Select(p => p.Similarity).ToArray();
            var y = list.Select(p => p.Forgetting).ToArray();
            pearson = Correlation.Pearson(x, y);
            spearman = Correlation.Spearman(x, y);
        }
        return new SimilarityForgettingCorrelation
        {
            Source = source,
            SimilarityMeasure = similarityMeasure,
            ForgettingMeasure = forgettingMeasure,
            Points = list,
            Pearson = pearson,
            Spearman = spearman,
        };
    }
}
