using MLNet.Lora.Forgetting;
using TorchSharp;

namespace MLNet.Lora.Tests.Forgetting;

public class TaskSimilarityTests
{
    [Fact]
    public void SameDistributionIsOneWhateverTheRowOrderAndScale()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(5, torch.CPU);
        var a = torch.randn(40, 6, generator: gen);
        var shuffled = a.index_select(0, torch.randperm(40, generator: gen));
        TaskSimilarity.RepresentationAlignment(a, a).Should().BeApproximately(1, 1e-12);
        TaskSimilarity.RepresentationAlignment(a, shuffled * 3 + 7).Should().BeApproximately(1, 1e-12, "rows need not be paired; scale and shift do not matter");
    }

    [Fact]
    public void OrthogonalFeatureSubspacesAreZero()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(6, torch.CPU);
        var a = torch.zeros(30, 4);
        var b = torch.zeros(50, 4);
        a[.., ..2] = torch.randn(30, 2, generator: gen);   // task A varies in features 0 and 1 only
        b[.., 2..] = torch.randn(50, 2, generator: gen);   // task B in features 2 and 3 only
        TaskSimilarity.RepresentationAlignment(a, b).Should().Be(0);
    }

    [Fact]
    public void HandComputedCovarianceCosine()
    {
        // A spreads along e1 only (variance 1 after centring), B along e1 and e2 equally: cos(diag(1,0), diag(1,1)) = 1/√2.
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new double[] { 1, 0, -1, 0 }, [2, 2]);
        var b = torch.tensor(new double[] { 1, 1, -1, -1, 1, -1, -1, 1 }, [4, 2]);
        TaskSimilarity.RepresentationAlignment(a, b).Should().BeApproximately(1 / Math.Sqrt(2), 1e-12);
    }

    [Fact]
    public void RejectsBadShapesAndConstantFeaturesGiveZero()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.ones(5, 3);
        TaskSimilarity.RepresentationAlignment(a, torch.randn(5, 3)).Should().Be(0, "no variance, no direction");
        FluentActions.Invoking(() => TaskSimilarity.RepresentationAlignment(a, torch.randn(5, 4))).Should().Throw<ArgumentException>().WithMessage("*width*");
        FluentActions.Invoking(() => TaskSimilarity.RepresentationAlignment(torch.randn(1, 3), a)).Should().Throw<ArgumentException>();
    }
}
