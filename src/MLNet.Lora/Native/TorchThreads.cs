using System.Globalization;

namespace MLNet.Lora.Native;

/// <summary>Where the number of torch's intra-op threads came from.</summary>
public enum TorchThreadSource
{
    /// <summary><see cref="TorchRuntime.IntraOpThreads"/>, set by the application (the command line's <c>--threads</c>).</summary>
    Explicit,

    /// <summary>The <c>MLNET_LORA_THREADS</c> environment variable.</summary>
    EnvironmentVariable,

    /// <summary>The container's CPU quota (cgroup v2 <c>cpu.max</c> or v1 <c>cpu.cfs_quota_us</c>), rounded down, at least 1.</summary>
    CgroupQuota,

    /// <summary><see cref="Environment.ProcessorCount"/>: no setting and no quota.</summary>
    ProcessorCount,
}

/// <summary>The number of intra-op threads torch uses in this process, and why.</summary>
/// <param name="Count">Threads.</param>
/// <param name="Source">Which setting decided.</param>
/// <param name="Detail">The setting's value as read (the quota in CPUs, the variable's text).</param>
public sealed record TorchThreadSelection(int Count, TorchThreadSource Source, string Detail)
{
    /// <summary>The environment variable that sets the thread count when the application does not.</summary>
    public const string EnvironmentVariable = "MLNET_LORA_THREADS";

    /// <summary>
    /// Picks the count from, in order: <paramref name="explicitCount"/>, <paramref name="environmentValue"/>, the
    /// <paramref name="quotaCpus"/>, and <paramref name="processorCount"/>. A quota is rounded down (1.5 CPUs: 1 thread),
    /// because a thread pool larger than the quota is throttled in every parallel region, and never above the processor
    /// count; an explicit count or the environment variable is taken as given.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The environment variable is not a positive whole number.</exception>
    public static TorchThreadSelection Choose(int? explicitCount, string? environmentValue, double? quotaCpus, int processorCount)
    {
        if (explicitCount is { } count)
            return new(count, TorchThreadSource.Explicit, $"{nameof(TorchRuntime)}.{nameof(TorchRuntime.IntraOpThreads)} = {count}");
        if (!string.IsNullOrWhiteSpace(environmentValue))
        {
            if (!int.TryParse(environmentValue.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int fromEnvironment) || fromEnvironment < 1)
                throw new ArgumentOutOfRangeException(nameof(environmentValue), environmentValue,
                    $"The environment variable {EnvironmentVariable} must be a positive whole number of threads (was '{environmentValue}').");
            return new(fromEnvironment, TorchThreadSource.EnvironmentVariable, $"{EnvironmentVariable}={environmentValue.Trim()}");
        }
        if (quotaCpus is { } quota && quota > 0)
            return new(Math.Clamp((int)Math.Floor(quota + 1e-9), 1, Math.Max(1, processorCount)), TorchThreadSource.CgroupQuota,
                $"cgroup CPU quota {quota.ToString("0.###", CultureInfo.InvariantCulture)} CPUs");
        return new(Math.Max(1, processorCount), TorchThreadSource.ProcessorCount, $"{processorCount} processors, no CPU quota");
    }

    /// <inheritdoc/>
    public override string ToString() => $"torch intra-op threads: {Count} ({Detail})";
}
