using MLNet.Lora.Native;

namespace MLNet.Lora.Tests.Native;

public class TorchNativeLoaderTests
{
    [Fact]
    public void TheRunTimeLoaderRanAndTorchSharpWorks()
    {
        // The module initializer has run by now; in a build output the build step already patched the library (or the
        // system libstdc++ is new enough), so the run-time copy is not needed here. The notebook check exercises it.
        TorchNativeLoader.Status.Should().NotBeNullOrWhiteSpace().And.NotContain("failed");
        TorchRuntime.EnsureLoaded();
        using var ones = TorchSharp.torch.ones(3);
        ones.sum().item<float>().Should().Be(3);
    }
}
