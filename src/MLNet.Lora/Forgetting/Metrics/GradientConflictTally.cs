namespace MLNet.Lora.Forgetting;

/// <summary>
/// Accumulates gradient cosines (see <see cref="GradientConflict.Cosine"/>) under a module kind and reports, per kind,
/// the mean cosine, the count and the conflict rate (share of cosines &lt; 0).
/// </summary>
/// <remarks>Module kinds are compared ordinally (case-sensitive). Not thread-safe: record from one thread at a time.</remarks>
internal sealed class GradientConflictTally
{
    private readonly Dictionary<string, Accumulator> _byKind = new(StringComparer.Ordinal);

    /// <summary>Total number of cosines recorded over all module kinds.</summary>
    public int Count { get; private set; }

    /// <summary>Records one cosine under a module kind.</summary>
    /// <param name="moduleKind">Non-blank module kind, for instance "query" or "ffn".</param>
    /// <param name="cosine">A cosine in [−1, 1].</param>
    /// <exception cref="ArgumentException"><paramref name="moduleKind"/> is null or blank, or <paramref name="cosine"/> is NaN or outside [−1, 1].</exception>
    public void Record(string moduleKind, double cosine)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(moduleKind);
        if (!(cosine >= -1.0 && cosine <= 1.0)) throw new ArgumentException($"{cosine} is not a cosine in [-1, 1].", nameof(cosine));

        if (!_byKind.TryGetValue(moduleKind, out var acc)) _byKind[moduleKind] = acc = new Accumulator();
        acc.Count++;
        acc.Sum += cosine;
        if (cosine < 0) acc.Conflicts++;
        Count++;
    }

    /// <summary>The statistics of one module kind.</summary>
    /// <param name="moduleKind">A kind passed to <see cref="Record"/> before.</param>
    /// <exception cref="ArgumentNullException"><paramref name="moduleKind"/> is null.</exception>
    /// <exception cref="KeyNotFoundException">Nothing was recorded under <paramref name="moduleKind"/>.</exception>
    public GradientConflictSummary Summary(string moduleKind)
    {
        ArgumentNullException.ThrowIfNull(moduleKind);
        if (!_byKind.TryGetValue(moduleKind, out var acc))
            throw new KeyNotFoundException($"No gradient cosine was recorded for module kind '{moduleKind}'.");
        return acc.ToSummary(moduleKind);
    }

    /// <summary>The statistics of every module kind recorded so far, ordered by kind (ordinal).</summary>
    public IReadOnlyList<GradientConflictSummary> Summarize() =>
        _byKind.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value.ToSummary(kv.Key)).ToList();

    private sealed class Accumulator
    {
        public int Count;
        public int Conflicts;
        public double Sum;

        public GradientConflictSummary ToSummary(string kind) => new(kind, Count, Sum / Count, (double)Conflicts / Count);
    }
}
