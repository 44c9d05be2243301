using System.Globalization;

namespace MLNet.Lora.Cli;

/// <summary>
/// Which part of the work this process does: shard <see cref="Index"/> of <see cref="Count"/>, from <c>--shard i/n</c>,
/// or from <c>--shards n</c> with the index in <c>JOB_COMPLETION_INDEX</c> (a Kubernetes Indexed Job pod's index).
/// </summary>
internal readonly record struct ShardSpec(int Index, int Count)
{
    public const string IndexVariable = "JOB_COMPLETION_INDEX";

    public static ShardSpec Whole => new(0, 1);

    /// <summary>Reads <c>i/n</c> (0 ≤ i &lt; n).</summary>
    public static bool TryParse(string text, out ShardSpec shard, out string? error)
    {
        shard = Whole;
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int index)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int count))
        {
            error = $"--shard takes i/n, the 0-based shard and the number of shards (for example 0/4), not '{text}'.";
            return false;
        }
        return TryCreate(index, count, "--shard", out shard, out error);
    }

    /// <summary>The shard from the options and the environment; <paramref name="explicitShard"/> wins over the variable.</summary>
    public static ShardSpec Resolve(ShardSpec? explicitShard, int? shards, string? environmentIndex)
    {
        if (explicitShard is { } given)
        {
            if (shards is { } n && n != given.Count) throw new CliException($"--shard {given.Index}/{given.Count} and --shards {n} disagree; give one of them.");
            return given;
        }
        if (shards is not { } count) return Whole;
        if (string.IsNullOrWhiteSpace(environmentIndex))
            throw new CliException($"--shards {count} needs the shard index: set {IndexVariable} (a Kubernetes Indexed Job sets it in each pod) or use --shard i/{count}.");
        if (!int.TryParse(environmentIndex.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            throw new CliException($"{IndexVariable} must be a whole number (was '{environmentIndex}').");
        return TryCreate(index, count, IndexVariable, out var shard, out string? error) ? shard : throw new CliException(error!);
    }

    /// <summary>The rows [start, end) of <paramref name="total"/> this shard takes: contiguous, so the shards' outputs concatenate in order.</summary>
    public (int Start, int End) Range(int total) =>
        ((int)((long)total * Index / Count), (int)((long)total * (Index + 1) / Count));

    private static bool TryCreate(int index, int count, string source, out ShardSpec shard, out string? error)
    {
        shard = Whole;
        error = count < 1 ? $"{source}: the number of shards must be at least 1 (was {count})."
            : index < 0 || index >= count ? $"{source}: shard index {index} is outside 0 to {count - 1}." : null;
        if (error is null) shard = new ShardSpec(index, count);
        return error is null;
    }

    public override string ToString() => $"{Index}/{Count}";
}
