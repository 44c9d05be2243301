using System.Globalization;

namespace MLNet.Lora.Native;

/// <summary>
/// Reads the CPU quota of the control group the process runs in (a container's CPU limit): cgroup v2's
/// <c>cpu.max</c> (<c>"150000 100000"</c>, or <c>"max 100000"</c> for none) or cgroup v1's <c>cpu.cfs_quota_us</c> /
/// <c>cpu.cfs_period_us</c> (quota -1 for none). Nested groups are read up to the root and the tightest quota wins.
/// </summary>
internal static class CgroupCpuQuota
{
    /// <summary>The quota in CPUs (1.5 = one and a half cores), or null when there is none or it cannot be read.</summary>
    /// <param name="cgroupRoot">Where the cgroup file system is mounted (<c>/sys/fs/cgroup</c>).</param>
    /// <param name="selfCgroupFile">The process's membership list (<c>/proc/self/cgroup</c>).</param>
    public static double? Read(string cgroupRoot = "/sys/fs/cgroup", string selfCgroupFile = "/proc/self/cgroup")
    {
        try
        {
            if (!Directory.Exists(cgroupRoot)) return null;
            var memberships = File.Exists(selfCgroupFile) ? File.ReadAllLines(selfCgroupFile) : [];
            // cgroup v2: one line "0::/path"; the controllers' files sit in the group's folder.
            string? unifiedPath = memberships.Select(l => l.Split(':', 3)).FirstOrDefault(p => p.Length == 3 && p[0] == "0" && p[1] == "")?[2];
            if (File.Exists(Path.Combine(cgroupRoot, "cgroup.controllers")))
                return Tightest(Folders(cgroupRoot, unifiedPath ?? "/"), folder => ParseV2(ReadOrNull(Path.Combine(folder, "cpu.max"))));

            // cgroup v1: "N:cpu,cpuacct:/path"; the cpu controller is mounted at cpu, cpu,cpuacct or cpuacct,cpu.
            string? cpuPath = memberships.Select(l => l.Split(':', 3))
                .FirstOrDefault(p => p.Length == 3 && p[1].Split(',').Contains("cpu"))?[2];
            foreach (string mount in new[] { "cpu", "cpu,cpuacct", "cpuacct,cpu" }.Select(m => Path.Combine(cgroupRoot, m)).Where(Directory.Exists))
                return Tightest(Folders(mount, cpuPath ?? "/"), folder => ParseV1(
                    ReadOrNull(Path.Combine(folder, "cpu.cfs_quota_us")), ReadOrNull(Path.Combine(folder, "cpu.cfs_period_us"))));
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;     // no readable quota is the same as none: fall back to the processor count
        }
    }

    /// <summary>cgroup v2's <c>cpu.max</c>: "quota period" in microseconds, quota "max" for no limit.</summary>
    public static double? ParseV2(string? text)
    {
        var parts = text?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (parts is not { Length: >= 1 } || parts[0] == "max") return null;
        long period = parts.Length > 1 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out long p) ? p : 100_000;
        return long.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long quota) && quota > 0 && period > 0
            ? (double)quota / period : null;
    }

    /// <summary>cgroup v1's <c>cpu.cfs_quota_us</c> and <c>cpu.cfs_period_us</c>; a quota of -1 means no limit.</summary>
    public static double? ParseV1(string? quotaText, string? periodText) =>
        long.TryParse(quotaText?.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long quota) && quota > 0
        && long.TryParse(periodText?.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long period) && period > 0
            ? (double)quota / period : null;

    /// <summary>The group's folder and its ancestors up to the mount: a parent's quota limits its children too.</summary>
    private static IEnumerable<string> Folders(string mount, string groupPath)
    {
        string full = Path.GetFullPath(Path.Combine(mount, groupPath.TrimStart('/')));
        string root = Path.GetFullPath(mount);
        // Inside a container the group's path names the host's hierarchy, which is mounted as the root: fall back to the mount.
        if (!Directory.Exists(full) || !full.StartsWith(root, StringComparison.Ordinal)) full = root;
        for (string? folder = full; folder is not null && folder.Length >= root.Length; folder = Path.GetDirectoryName(folder))
            yield return folder;
    }

    private static double? Tightest(IEnumerable<string> folders, Func<string, double?> quotaOf)
    {
        double? tightest = null;
        foreach (string folder in folders)
            if (quotaOf(folder) is { } quota && (tightest is null || quota < tightest)) tightest = quota;
        return tightest;
    }

    private static string? ReadOrNull(string path) => File.Exists(path) ? File.ReadAllText(path) : null;
}
