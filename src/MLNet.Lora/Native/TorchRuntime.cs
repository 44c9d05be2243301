using TorchSharp;

namespace MLNet.Lora.Native;

/// <summary>
/// Loads TorchSharp's native runtime once and turns a load failure into one actionable message
/// instead of a long chain of type-initializer exceptions.
/// </summary>
public static class TorchRuntime
{
    private static readonly Lazy<Exception?> LoadFailure = new(TryLoad, LazyThreadSafetyMode.ExecutionAndPublication);

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
