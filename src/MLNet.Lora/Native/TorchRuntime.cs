using TorchSharp;

namespace MLNet.Lora.Native;

/// <summary>
/// Loads TorchSharp's native runtime once, turns a load failure into one actionable message instead of a long chain of
/// type-initializer exceptions, and sizes torch's intra-op thread pool to the share of the machine the process has.
/// </summary>
public static class TorchRuntime
{
    private static readonly Lazy<Exception?> LoadFailure = new(TryLoad, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly object ThreadsLock = new();
    private static int? intraOpThreads;
    private static TorchThreadSelection? threads;

    /// <summary>
    /// The number of intra-op threads torch uses, set by the application; null (the default) picks it from the
    /// <c>MLNET_LORA_THREADS</c> environment variable, else the container's CPU quota (cgroup), else
    /// <see cref="Environment.ProcessorCount"/>. libtorch's own default is every core of the machine, which a container
    /// limited to part of it, or several processes sharing a node, oversubscribe. Set it before the first model loads, or
    /// at any time to change it. See <see cref="Threads"/> for what was picked.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is less than 1.</exception>
    public static int? IntraOpThreads
    {
        get => intraOpThreads;
        set
        {
            if (value is < 1) throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), value, $"{nameof(TorchRuntime)}.{nameof(IntraOpThreads)} must be at least 1 (or null to pick it from the environment).");
            lock (ThreadsLock)
            {
                intraOpThreads = value;
                // Already applied: apply the new choice now rather than at a load that has already happened.
                if (threads is not null) threads = ApplyThreads();
            }
        }
    }

    /// <summary>The intra-op thread count torch uses and where it came from (loads the runtime if needed).</summary>
    public static TorchThreadSelection Threads
    {
        get
        {
            EnsureLoaded();
            return threads!;
        }
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> with a remedy when the native runtime cannot load.</summary>
    public static void EnsureLoaded()
    {
        TorchNativeLoader.EnsurePrepared();
        if (LoadFailure.Value is { } failure)
        {
            throw new InvalidOperationException(
                "TorchSharp's native runtime could not be loaded. " +
                "An application must reference one TorchSharp backend package: 'TorchSharp-cpu', or 'TorchSharp-cuda-linux' / " +
                "'TorchSharp-cuda-windows' for NVIDIA GPUs. On Linux with a libstdc++ older than GCC 13 (Debian 12, Ubuntu 22.04), " +
                "MLNet.Lora's build step marks libLibTorchSharp.so's GLIBCXX_3.4.32 requirement weak in the build output: rebuild " +
                "the application (and do not set MLNetLoraSkipNativePatch=true), or install a newer libstdc++. " +
                $"Run-time patch (for notebooks and other hosts without that build step): {TorchNativeLoader.Status}. " +
                $"Underlying error: {Innermost(failure).Message}",
                failure);
        }
        if (threads is null)
            lock (ThreadsLock) threads ??= ApplyThreads();
    }

    /// <summary>Picks the thread count (see <see cref="IntraOpThreads"/>) and hands it to torch.</summary>
    private static TorchThreadSelection ApplyThreads()
    {
        var selection = TorchThreadSelection.Choose(intraOpThreads, Environment.GetEnvironmentVariable(TorchThreadSelection.EnvironmentVariable),
            CgroupCpuQuota.Read(), Environment.ProcessorCount);
        torch.set_num_threads(selection.Count);
        return selection;
    }

    private static Exception? TryLoad()
    {
        try
        {
            // Touching the torch class initializes libtorch and LibTorchSharp.
            using var probe = torch.zeros(1);
            return null;
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException or EntryPointNotFoundException)
        {
            return e;
        }
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }
}
