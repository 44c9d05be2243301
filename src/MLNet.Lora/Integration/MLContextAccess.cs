using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace MLNet.Lora.Integration;

/// <summary>
/// What an ML.NET extension needs from an <see cref="MLContext"/> but ML.NET keeps internal: the host environment
/// behind a catalog, its seed, and its device settings. Read by reflection over ML.NET 5's member names.
/// </summary>
internal static class MLContextAccess
{
    private const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>The environment behind a catalog (<c>mlContext.MulticlassClassification.Trainers</c>, <c>mlContext.Model</c>, ...).</summary>
    public static IHostEnvironment EnvironmentOf(object catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        if (catalog is IHostEnvironment env) return env;
        // Every ML.NET catalog implements the internal IInternalCatalog, whose Environment is what components use.
        var internalCatalog = catalog.GetType().GetInterfaces().FirstOrDefault(i => i.Name == "IInternalCatalog");
        if (internalCatalog?.GetProperty("Environment")?.GetValue(catalog) is IHostEnvironment viaInterface) return viaInterface;
        for (var type = catalog.GetType(); type is not null; type = type.BaseType)
        {
            if (type.GetProperty("Environment", Instance | BindingFlags.DeclaredOnly)?.GetValue(catalog) is IHostEnvironment viaProperty) return viaProperty;
            if (type.GetField("_env", Instance | BindingFlags.DeclaredOnly)?.GetValue(catalog) is IHostEnvironment viaField) return viaField;
        }
        throw new NotSupportedException($"Cannot find the ML.NET environment behind {catalog.GetType().FullName}; this MLNet.Lora build supports Microsoft.ML 5.x.");
    }

    /// <summary>The seed the <see cref="MLContext"/> was created with, if any.</summary>
    public static int? Seed(IHostEnvironment env) => Read<int?>(Inner(env), "Seed");

    /// <summary>The device ML.NET's settings ask for: CUDA device <c>GpuDeviceId</c> when set and available, else the CPU.</summary>
    public static torch.Device Device(IHostEnvironment env)
    {
        var inner = Inner(env);
        int? gpu = Read<int?>(inner, "GpuDeviceId");
        if (gpu is null) return torch.CPU;
        if (torch.cuda.is_available() && gpu.Value < torch.cuda.device_count()) return torch.device(DeviceType.CUDA, gpu.Value);
        if (Read<bool>(inner, "FallbackToCpu")) return torch.CPU;
        throw new InvalidOperationException(
            $"{nameof(MLContext)}.{nameof(MLContext.GpuDeviceId)} is {gpu}, but no such CUDA device is available to TorchSharp. " +
            $"Reference the TorchSharp-cuda-linux (or -windows) package instead of TorchSharp-cpu, or set {nameof(MLContext)}.{nameof(MLContext.FallbackToCpu)} = true.");
    }

    // An MLContext forwards to its LocalEnvironment, which carries the settings.
    private static object Inner(IHostEnvironment env) =>
        env is MLContext context ? typeof(MLContext).GetField("_env", Instance)?.GetValue(context) ?? env : env;

    private static T? Read<T>(object target, string name)
    {
        for (var type = target.GetType(); type is not null; type = type.BaseType)
            if (type.GetProperty(name, Instance | BindingFlags.DeclaredOnly) is { } property) return (T?)property.GetValue(target);
        return default;
    }
}
