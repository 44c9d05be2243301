namespace MLNet.Lora.Forgetting;

/// <summary>
/// Correlation coefficients between two paired samples, used to relate forgetting to its candidate predictors
/// (drift, sharpness, gradient conflict) across runs.
/// </summary>
/// <remarks>
/// References: K. Pearson, "Mathematical contributions to the theory of evolution III: Regression, heredity and panmixia",
/// Phil. Trans. R. Soc. A 187, 1896; C. Spearman, "The proof and measurement of association between two things",
/// Am. J. Psychol. 15(1), 1904.
/// </remarks>
internal static class Correlation
{
    /// <summary>
    /// Pearson's product-moment correlation r = Σ (x−x̄)(y−ȳ) / √(Σ (x−x̄)² · Σ (y−ȳ)²).
    /// </summary>
    /// <param name="x">First sample, finite values, at least 2.</param>
    /// <param name="y">Second sample, paired with <paramref name="x"/>, same length.</param>
    /// <returns>r in [−1, 1], or <see cref="double.NaN"/> when either sample has zero variance (all values equal), where r is undefined.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The lengths differ, fewer than 2 pairs, or a value is NaN or infinite.</exception>
    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        Validate(x, y);
        // Decided exactly rather than by sxx == 0, which rounding in the mean can miss.
        if (AllEqual(x) || AllEqual(y)) return double.NaN;

        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Count; i++)
        {
            double dx = x[i] - mx, dy = y[i] - my;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
        return Math.Clamp(sxy / (Math.Sqrt(sxx) * Math.Sqrt(syy)), -1.0, 1.0);
    }

    /// <summary>
    /// Spearman's rank correlation: Pearson's r of the ranks, with tied values given the average of the ranks they span.
    /// </summary>
    /// <param name="x">First sample, finite values, at least 2.</param>
    /// <param name="y">Second sample, paired with <paramref name="x"/>, same length.</param>
    /// <returns>ρ in [−1, 1], or <see cref="double.NaN"/> when either sample has all values equal.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The lengths differ, fewer than 2 pairs, or a value is NaN or infinite.</exception>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        Validate(x, y);
        return Pearson(Ranks(x), Ranks(y));
    }

    /// <summary>1-based ranks; a run of ties shares the mean of the ranks it occupies.</summary>
    internal static double[] Ranks(IReadOnlyList<double> values)
    {
        int n = values.Count;
        var order = Enumerable.Range(0, n).OrderBy(i => values[i]).ToArray();
        var ranks = new double[n];
        for (int start = 0; start < n;)
        {
            int end = start;
            while (end + 1 < n && values[order[end + 1]] == values[order[start]]) end++;
            double averageRank = (start + end) / 2.0 + 1.0;
            for (int k = start; k <= end; k++) ranks[order[k]] = averageRank;
            start = end + 1;
        }
        return ranks;
    }

    private static void Validate(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count != y.Count) throw new ArgumentException($"x and y must be paired: x has {x.Count} values, y has {y.Count}.", nameof(y));
        if (x.Count < 2) throw new ArgumentException($"A correlation needs at least 2 pairs; got {x.Count}.", nameof(x));
        if (x.Any(v => !double.IsFinite(v))) throw new ArgumentException("x contains NaN or infinity.", nameof(x));
        if (y.Any(v => !double.IsFinite(v))) throw new ArgumentException("y contains NaN or infinity.", nameof(y));
    }

    private static bool AllEqual(IReadOnlyList<double> v)
    {
        for (int i = 1; i < v.Count; i++) if (v[i] != v[0]) return false;
        return true;
    }
}
