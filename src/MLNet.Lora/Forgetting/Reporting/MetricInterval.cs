using System.Globalization;

namespace MLNet.Lora.Forgetting;

/// <summary>A figure averaged over runs, with the bounds of its 95 % bootstrap interval (see <see cref="SequenceSummary"/>).</summary>
/// <param name="Mean">The mean over runs of each run's figure.</param>
/// <param name="Lower">The 2.5th percentile of the bootstrap distribution.</param>
/// <param name="Upper">The 97.5th percentile of the bootstrap distribution.</param>
public readonly record struct MetricInterval(double Mean, double Lower, double Upper)
{
    /// <summary>The interval with mean and bounds multiplied by <paramref name="factor"/> (100 gives accuracy points).</summary>
    /// <param name="factor">The multiplier.</param>
    public MetricInterval Scale(double factor) => new(Mean * factor, Lower * factor, Upper * factor);

    /// <summary>"mean [lower, upper]", each number with <paramref name="format"/> in the invariant culture.</summary>
    /// <param name="format">A .NET numeric format such as "0.0" or "F3"; null for the shortest round-trip form.</param>
    public string ToString(string? format) =>
        $"{Mean.ToString(format, CultureInfo.InvariantCulture)} [{Lower.ToString(format, CultureInfo.InvariantCulture)}, {Upper.ToString(format, CultureInfo.InvariantCulture)}]";

    /// <summary>"mean [lower, upper]" with three decimals, for example "0.704 [0.681, 0.725]".</summary>
    public override string ToString() => ToString("0.000");
}
