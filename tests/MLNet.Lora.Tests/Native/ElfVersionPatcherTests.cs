using MLNet.Lora.Build;

namespace MLNet.Lora.Tests.Native;

public class ElfVersionPatcherTests : IDisposable
{
    private const string Version = "GLIBCXX_3.4.32";
    private readonly string folder = Directory.CreateTempSubdirectory("mlnet-lora-elf-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>An unpatched copy of TorchSharp's native library, straight from the package cache.</summary>
    private string PristineCopy()
    {
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string source = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        File.Exists(source).Should().BeTrue($"the TorchSharp package is restored at {source}");
        string copy = Path.Combine(folder, "libLibTorchSharp.so");
        File.Copy(source, copy);
        return copy;
    }

    [Fact]
    public void TorchSharpNeedsTheVersionOnceAndNotWeakly()
    {
        string library = PristineCopy();
        byte[] bytes = File.ReadAllBytes(library);
        var flags = ElfVersionPatcher.FindRequirementFlags(bytes, Version, library);
        flags.Should().ContainSingle();
        (BitConverter.ToUInt16(bytes, flags[0]) & 0x2).Should().Be(0, "the shipped file requires the version strictly");
    }

    [Fact]
    public void MarkingWeakChangesOnlyThatFlagAndIsIdempotent()
    {
        string library = PristineCopy();
        byte[] before = File.ReadAllBytes(library);
        var stamp = File.GetLastWriteTimeUtc(library);

        ElfVersionPatcher.MarkWeak(library, Version).Should().Be(ElfVersionPatcher.Outcome.Patched);
        byte[] after = File.ReadAllBytes(library);
        int offset = ElfVersionPatcher.FindRequirementFlags(after, Version, library).Single();
        (BitConverter.ToUInt16(after, offset) & 0x2).Should().Be(0x2);
        Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).Should().Equal([offset], "only the low byte of vna_flags changes");
        File.GetLastWriteTimeUtc(library).Should().Be(stamp, "the timestamp is kept so incremental copies stay quiet");

        ElfVersionPatcher.MarkWeak(library, Version).Should().Be(ElfVersionPatcher.Outcome.AlreadyWeak);
        File.ReadAllBytes(library).Should().Equal(after);
        Directory.GetFiles(folder).Should().ContainSingle("no temporary file is left behind");
    }

    [Fact]
    public void AVersionTheLibraryDoesNotNeedIsLeftAlone()
    {
        string library = PristineCopy();
        byte[] before = File.ReadAllBytes(library);
        ElfVersionPatcher.MarkWeak(library, "GLIBCXX_9.9.99").Should().Be(ElfVersionPatcher.Outcome.NotRequired);
        File.ReadAllBytes(library).Should().Equal(before);
    }

    [Fact]
    public void ANonElfFileIsRejectedByName()
    {
        string path = Path.Combine(folder, "notes.txt");
        File.WriteAllText(path, "not a shared library, just some text long enough to have a header");
        var act = () => ElfVersionPatcher.MarkWeak(path, Version);
        act.Should().Throw<InvalidDataException>().WithMessage("*notes.txt*not an ELF file*");
    }

    [Fact]
    public void TheBuildOutputCopyIsPatchedAndTorchSharpLoads()
    {
        // The test host itself runs from a build output that the MSBuild step patched (where the system lacks the version).
        string output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        string? system = ElfVersionPatcher.FindSystemLibStdCxx();
        if (OperatingSystem.IsLinux() && system is not null && !ElfVersionPatcher.DefinesVersion(system, Version))
        {
            byte[] bytes = File.ReadAllBytes(output);
            int offset = ElfVersionPatcher.FindRequirementFlags(bytes, Version, output).Single();
            (BitConverter.ToUInt16(bytes, offset) & 0x2).Should().Be(0x2);
        }
        MLNet.Lora.Native.TorchRuntime.EnsureLoaded();
    }
}
