using MLNet.Lora.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Adapters;

public class LoraMergeScopeTests
{
    [Fact]
    public void MergedWeightOutlivesTheCallersDisposeScope()
    {
        torch.random.manual_seed(3);
        using var layer = new LoraLinear(nn.Linear(8, 6));
        layer.AddAdapter("default", new LoraConfig { Rank = 2 });
        using (no_grad()) layer.LoraB("default").normal_();

        // Measurement code merges again inside its own scopes; the layer owns the merged copy, not that scope.
        using (NewDisposeScope()) layer.Merge();

        using var scope = NewDisposeScope();
        var x = randn(3, 8);
        var merged = layer.forward(x);
        layer.Unmerge();
        merged.allclose(layer.forward(x), rtol: 1e-5, atol: 1e-5).Should().BeTrue();
    }
}
