using MLNet.Lora.Native;
using TorchSharp;
namespace MLNet.Lora.Tests;
public class SmokeTests
{
    [Fact]
    public void TorchLoads()
    {
        TorchRuntime.EnsureLoaded();
        using var t = torch.ones(2, 2);
        t.sum().item<float>().Should().Be(4);
    }
}
