using MLNet.Lora.Forgetting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Forgetting;

public class DisposalTests
{
    [Fact]
    public void TensorMetricsLeaveNoLiveTensorsBehind()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(2, torch.CPU);
        var x = torch.randn(20, 4, generator: gen);
        var y = torch.randn(20, 3, generator: gen);
        var p = torch.randn(2, 2, 3, 3, generator: gen).softmax(-1);
        var q = torch.randn(2, 2, 3, 3, generator: gen).softmax(-1);
        var mask = torch.ones(2, 3);
        var w = new Parameter(torch.randn(3, generator: gen));
        var h = torch.diag(torch.tensor(new float[] { 3, 2, 1 }));
        Func<Tensor> loss = () => 0.5f * w.dot(h.matmul(w));
        var stats = DisposeScopeManager.Statistics;
        long live = stats.ThreadTotalLiveCount;

        RepresentationSimilarity.LinearCka(x, y);
        AttentionDivergence.MeanPerHead(p, q, mask);
        AttentionDivergence.JensenShannon(p, q).Dispose();
        GradientConflict.Cosine([x, y], [x, y]);
        Sharpness.TopHessianEigenvalue(loss, [w]);
        Sharpness.SamSharpness(loss, [w]);

        stats.ThreadTotalLiveCount.Should().Be(live);
    }
}
