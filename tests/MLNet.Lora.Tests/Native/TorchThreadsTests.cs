using MLNet.Lora.Native;

namespace MLNet.Lora.Tests.Native;

/// <summary>Picking torch's thread count: explicit setting, environment variable, the container's cgroup quota, the processor count.</summary>
public sealed class TorchThreadsTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mlnet-lora-cgroup-").FullName;

    private string Write(string relative, string text)
    {
        string path = Path.Combine(root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ReadsCgroupV2QuotasTheTightestUpTheTree()
    {
        string fs = Path.Combine(root, "v2");
        Write("v2/cgroup.controllers", "cpu memory\n");
        string self = Write("self-cgroup", "0::/kubepods/pod1/container\n");
        Write("v2/kubepods/pod1/container/cpu.max", "max 100000\n");
        Write("v2/kubepods/pod1/cpu.max", "250000 100000\n");
        Write("v2/kubepods/cpu.max", "400000 100000\n");
        CgroupCpuQuota.Read(fs, self).Should().Be(2.5, "the pod's limit binds its container");

        // In a container with its own cgroup namespace the group is the root of the mount.
        Write("self-ns", "0::/\n");
        Write("v2/cpu.max", "150000 100000\n");
        CgroupCpuQuota.Read(fs, Path.Combine(root, "self-ns")).Should().Be(1.5);
        // Without a namespace the path names the host's hierarchy, which the container does not see: the mount's own file counts.
        CgroupCpuQuota.Read(fs, Write("self-host", "0::/docker/abc123\n")).Should().Be(1.5);

        CgroupCpuQuota.ParseV2("max 100000").Should().BeNull();
        CgroupCpuQuota.ParseV2("50000 100000").Should().Be(0.5);
        CgroupCpuQuota.ParseV2("garbage").Should().BeNull();
        CgroupCpuQuota.ParseV2(null).Should().BeNull();
    }

    [Fact]
    public void ReadsCgroupV1Quotas()
    {
        string fs = Path.Combine(root, "v1");
        string self = Write("self-v1", "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n");
        Write("v1/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "300000\n");
        Write("v1/cpu,cpuacct/docker/x/cpu.cfs_period_us", "100000\n");
        Write("v1/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        Write("v1/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        CgroupCpuQuota.Read(fs, self).Should().Be(3);

        CgroupCpuQuota.ParseV1("-1", "100000").Should().BeNull("-1 is no limit");
        CgroupCpuQuota.ParseV1("50000", "0").Should().BeNull();
        CgroupCpuQuota.Read(Path.Combine(root, "nothing-mounted"), self).Should().BeNull();
    }

    [Fact]
    public void ChoosesInOrderExplicitEnvironmentQuotaProcessors()
    {
        TorchThreadSelection.Choose(3, "2", 1.5, 16).Should().Be(new TorchThreadSelection(3, TorchThreadSource.Explicit, "TorchRuntime.IntraOpThreads = 3"));
        TorchThreadSelection.Choose(null, " 2 ", 1.5, 16).Should().Be(new TorchThreadSelection(2, TorchThreadSource.EnvironmentVariable, "MLNET_LORA_THREADS=2"));
        TorchThreadSelection.Choose(null, null, 1.5, 16).Should().Be(new TorchThreadSelection(1, TorchThreadSource.CgroupQuota, "cgroup CPU quota 1.5 CPUs"));
        TorchThreadSelection.Choose(null, "", 0.5, 16).Count.Should().Be(1, "a quota under one CPU still gets a thread");
        TorchThreadSelection.Choose(null, null, 64, 8).Count.Should().Be(8, "never more threads than processors");
        TorchThreadSelection.Choose(null, null, null, 8).Should().Be(new TorchThreadSelection(8, TorchThreadSource.ProcessorCount, "8 processors, no CPU quota"));
        TorchThreadSelection.Choose(null, null, null, 8).ToString().Should().Be("torch intra-op threads: 8 (8 processors, no CPU quota)");

        var bad = () => TorchThreadSelection.Choose(null, "all", null, 8);
        bad.Should().Throw<ArgumentOutOfRangeException>().WithMessage("The environment variable MLNET_LORA_THREADS must be a positive whole number of threads (was 'all')*");
        var zero = () => TorchRuntime.IntraOpThreads = 0;
        zero.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*IntraOpThreads must be at least 1*");
    }

    [Fact]
    public void TheRuntimeAppliesTheSelectionToTorch()
    {
        var before = TorchRuntime.IntraOpThreads;
        int original = TorchSharp.torch.get_num_threads();
        try
        {
            TorchRuntime.IntraOpThreads = 1;
            TorchRuntime.Threads.Should().Be(new TorchThreadSelection(1, TorchThreadSource.Explicit, "TorchRuntime.IntraOpThreads = 1"));
            TorchSharp.torch.get_num_threads().Should().Be(1);
        }
        finally
        {
            TorchRuntime.IntraOpThreads = before;
            TorchSharp.torch.set_num_threads(original);
        }
    }

    public void Dispose() => Directory.Delete(root, recursive: true);
}
