using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace MLNet.Lora.Native;

/// <summary>
/// The run-time half of the native-loading fix, for hosts where no MSBuild build step ran over the application
/// (.NET Interactive notebooks, <c>dotnet-repl</c>, F# Interactive, tools that load assemblies from the NuGet cache).
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp 0.107.0's <c>libLibTorchSharp.so</c> asks for <c>GLIBCXX_3.4.32</c> (GCC 13), which Debian 12 and Ubuntu 22.04
/// lack. Applications get a patched copy from the package's build step. Where that step never ran, this loader, when
/// MLNet.Lora's assembly loads on such a Linux machine and TorchSharp cannot load its native library as it is: writes a
/// copy of <c>libLibTorchSharp.so</c> with that one requirement marked weak into a per-user folder (never into the NuGet
/// cache), loads libtorch's libraries from where TorchSharp's backend package put them, then loads the copy. TorchSharp's
/// own lookup of <c>LibTorchSharp</c> then finds the already loaded library by its name.
/// </para>
/// <para>
/// It does nothing on other systems, where the system libstdc++ has the version, or where TorchSharp's library already
/// loads (a build output the build step patched). Set the environment variable <c>MLNET_LORA_SKIP_NATIVE_PATCH=1</c> to
/// turn it off, and <c>MLNET_LORA_NATIVE_DIR</c> to choose the folder of the patched copy.
/// </para>
/// </remarks>
public static class TorchNativeLoader
{
    /// <summary>Environment variable that turns the run-time patch off when set to <c>1</c> or <c>true</c>.</summary>
    public const string SkipVariable = "MLNET_LORA_SKIP_NATIVE_PATCH";

    /// <summary>Environment variable naming the folder for patched copies (default <c>LocalApplicationData/MLNet.Lora/native</c>).</summary>
    public const string FolderVariable = "MLNET_LORA_NATIVE_DIR";

    private const string RequiredVersion = "GLIBCXX_3.4.32";
    private const string LibraryFile = "libLibTorchSharp.so";

    // Loaded in dependency order; libtorch_cpu.so finds its own libgomp through its $ORIGIN run path.
    private static readonly string[] LibTorchLibraries = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];

    private static readonly Lazy<string> Outcome = new(Prepare, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// What the loader did, in words: nothing needed, patched copy loaded (and from where), or why it could not help.
    /// Reading it runs the loader if it has not run yet.
    /// </summary>
    public static string Status => Outcome.Value;

    /// <summary>Runs the loader once (it also runs when MLNet.Lora's assembly loads); later calls do nothing.</summary>
    public static void EnsurePrepared() => _ = Outcome.Value;

    // Runs before any code of this assembly, so before the first TorchSharp call that would fail to load the library.
#pragma warning disable CA2255 // a library module initializer is the point: no MLNet.Lora code may touch TorchSharp first
    [ModuleInitializer]
    internal static void OnAssemblyLoad() => EnsurePrepared();
#pragma warning restore CA2255

    private static string Prepare()
    {
        try
        {
            return PrepareCore();
        }
        catch (Exception e)
        {
            // Never break the assembly's loading: TorchRuntime.EnsureLoaded reports a failure that matters, with this text.
            return $"the run-time patch failed: {e.GetType().Name}: {e.Message}";
        }
    }

    private static string PrepareCore()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return "not needed: not Linux";
        string? skip = Environment.GetEnvironmentVariable(SkipVariable);
        if (skip is "1" || string.Equals(skip, "true", StringComparison.OrdinalIgnoreCase)) return $"skipped: {SkipVariable} is set";
        string? system = ElfVersionPatcher.FindSystemLibStdCxx();
        if (system is null) return "not needed: no system libstdc++.so.6 found";
        if (ElfVersionPatcher.DefinesVersion(system, RequiredVersion)) return $"not needed: {system} defines {RequiredVersion}";

        Assembly torchSharp = typeof(TorchSharp.torch).Assembly;
        // A build output patched by the build step (or a system with a newer libstdc++ on the search path) loads as is.
        if (NativeLibrary.TryLoad("LibTorchSharp", torchSharp, null, out _)) return "not needed: TorchSharp's native library loads as it is";

        string? original = FindOriginal(torchSharp);
        if (original is null)
            return $"not applied: no {LibraryFile} found near {torchSharp.Location}; reference a TorchSharp backend package (TorchSharp-cpu)";
        string? libTorchFolder = FindLibTorchFolder(Path.GetDirectoryName(original)!, torchSharp);
        if (libTorchFolder is null)
            return $"not applied: libtorch's libraries (libtorch_cpu.so) were not found; reference TorchSharp-cpu (or libtorch-cpu-linux-x64)";

        string patched = PatchedCopy(original);
        foreach (string library in LibTorchLibraries)
        {
            string path = Path.Combine(libTorchFolder, library);
            if (File.Exists(path)) NativeLibrary.Load(path);
        }
        NativeLibrary.Load(patched);
        return $"applied: {system} lacks {RequiredVersion}; loaded {patched} (a copy of {original} with that requirement marked weak) " +
               $"and libtorch from {libTorchFolder}";
    }

    /// <summary>TorchSharp's <c>libLibTorchSharp.so</c>: beside the assembly, in its runtimes folder, or in its NuGet package.</summary>
    private static string? FindOriginal(Assembly torchSharp)
    {
        string folder = Path.GetDirectoryName(torchSharp.Location) ?? AppContext.BaseDirectory;
        string native = Path.Combine("runtimes", Rid, "native");
        var candidates = new List<string>
        {
            Path.Combine(folder, LibraryFile),
            Path.Combine(folder, native, LibraryFile),
            Path.Combine(folder, "..", "..", native, LibraryFile),     // <packages>/torchsharp/<version>/lib/<tfm>/TorchSharp.dll
        };
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirectories)
            candidates.AddRange(searchDirectories.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, LibraryFile)));
        return candidates.Select(Path.GetFullPath).FirstOrDefault(File.Exists);
    }

    /// <summary>The folder holding <c>libtorch_cpu.so</c>: beside the original (build outputs) or in the libtorch-cpu package.</summary>
    private static string? FindLibTorchFolder(string originalFolder, Assembly torchSharp)
    {
        if (File.Exists(Path.Combine(originalFolder, "libtorch_cpu.so"))) return originalFolder;
        // <packages>/torchsharp/<version>/lib/<tfm>/ → <packages>/libtorch-cpu-<rid>/<libtorch version>/runtimes/<rid>/native
        string? libFolder = Path.GetDirectoryName(torchSharp.Location);
        if (libFolder is null) return null;
        string packages = Path.GetFullPath(Path.Combine(libFolder, "..", "..", "..", ".."));
        string package = Path.Combine(packages, $"libtorch-cpu-{Rid}");
        if (!Directory.Exists(package)) return null;
        // Prefer the libtorch version this TorchSharp was built against (a private constant), else the newest present.
        // GetRawConstantValue reads the literal from metadata without running torch's static constructor, which would
        // try (and fail) to load the native library before the copy is ready.
        var field = typeof(TorchSharp.torch).GetField("libtorchPackageVersion", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Static);
        string? wanted = field is { IsLiteral: true } ? field.GetRawConstantValue() as string : null;
        Version? wantedVersion = ParseVersion(wanted);
        var versions = Directory.GetDirectories(package)
            .Where(d => File.Exists(Path.Combine(d, "runtimes", Rid, "native", "libtorch_cpu.so")))
            .Select(d => (Folder: Path.Combine(d, "runtimes", Rid, "native"), Version: ParseVersion(Path.GetFileName(d))))
            .OrderByDescending(v => wantedVersion is not null && v.Version == wantedVersion)
            .ThenByDescending(v => v.Version ?? new Version(0, 0, 0, 0))
            .Select(v => v.Folder)
            .ToList();
        return versions.FirstOrDefault();
    }

    /// <summary>A patched copy of <paramref name="original"/>, written once per distinct original (keyed by its SHA-256), atomically.</summary>
    private static string PatchedCopy(string original)
    {
        byte[] bytes = File.ReadAllBytes(original);
        string key = Convert.ToHexString(SHA256.HashData(bytes))[..16].ToLowerInvariant();
        string root = Environment.GetEnvironmentVariable(FolderVariable) is { Length: > 0 } configured
            ? Path.GetFullPath(configured)
            : Path.Combine(UserFolder(), "MLNet.Lora", "native");
        string folder = Path.Combine(root, key);
        string target = Path.Combine(folder, LibraryFile);
        if (File.Exists(target) && IsWeak(target)) return target;

        Directory.CreateDirectory(folder);
        // Patch a private temporary copy, then rename: a concurrent process never sees a half-written library.
        string temp = Path.Combine(folder, $".{LibraryFile}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllBytes(temp, bytes);
            ElfVersionPatcher.MarkWeak(temp, RequiredVersion);
            File.Move(temp, target, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return target;
    }

    // NuGet folders say 2.10.0, TorchSharp's constant 2.10.0.0: compare with missing parts as zero.
    private static Version? ParseVersion(string? text) =>
        Version.TryParse(text, out var v) ? new Version(v.Major, v.Minor, Math.Max(v.Build, 0), Math.Max(v.Revision, 0)) : null;

    private static bool IsWeak(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        return ElfVersionPatcher.FindRequirementFlags(elf, RequiredVersion, path).All(offset => (BitConverter.ToUInt16(elf, offset) & 0x2) != 0);
    }

    private static string UserFolder()
    {
        string local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify);
        return string.IsNullOrEmpty(local) ? Path.GetTempPath() : local;
    }

    private static string Rid => "linux-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
}
