using MLNet.Lora.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Adapters;

public class LoraLinearTests
{
    private static LoraLinear Make(int rank = 4, int inFeatures = 16, int outFeatures = 12, double alpha = 8)
    {
        torch.random.manual_seed(3);
        var layer = new LoraLinear(nn.Linear(inFeatures, outFeatures));
        layer.AddAdapter("default", new LoraConfig { Rank = rank, Alpha = alpha });
        return layer;
    }

    [Fact]
    public void FreshAdapterChangesNothing()
    {
        using var layer = Make();
        using var scope = NewDisposeScope();
        var x = randn(5, 16);
        var expected = layer.BaseLayer.forward(x);
        layer.forward(x).Identical(expected).Should().BeTrue("B starts at zero, so B·A adds exactly nothing");
    }

    [Fact]
    public void ForwardIsBasePlusScaledLowRankUpdate()
    {
        using var layer = Make(rank: 2, alpha: 6);
        using var scope = NewDisposeScope();
        using (no_grad()) layer.LoraB("default").normal_();
        var x = randn(3, 16);
        var expected = layer.BaseLayer.forward(x) + x.matmul(layer.LoraA("default").t()).matmul(layer.LoraB("default").t()) * 3.0;
        layer.forward(x).allclose(expected, rtol: 1e-5, atol: 1e-5).Should().BeTrue();
        layer.DeltaWeight("default").shape.Should().Equal(12, 16);
    }

    [Fact]
    public void MergedEqualsUnmergedAndUnmergeRestoresExactly()
    {
        using var layer = Make();
        using var scope = NewDisposeScope();
        using (no_grad()) layer.LoraB("default").normal_();
        var x = randn(7, 16);
        var unmerged = layer.forward(x);
        var baseWeight = layer.BaseLayer.weight!.clone();

        layer.Merge();
        layer.IsMerged.Should().BeTrue();
        var merged = layer.forward(x);
        (merged - unmerged).abs().max().item<float>().Should().BeLessThan(1e-5f);
        layer.BaseLayer.weight!.Identical(baseWeight).Should().BeTrue("merging works on a copy");

        layer.Unmerge();
        layer.forward(x).Identical(unmerged).Should().BeTrue();
    }

    [Fact]
    public void MergeRefusesNonFiniteWeights()
    {
        using var layer = Make();
        using (no_grad()) layer.LoraB("default").fill_(float.PositiveInfinity);
        var act = () => layer.Merge();
        act.Should().Throw<InvalidOperationException>().WithMessage("*non-finite*");
        layer.IsMerged.Should().BeFalse();
    }

    [Fact]
    public void RankLargerThanTheLayerIsRejected()
    {
        using var layer = new LoraLinear(nn.Linear(8, 6));
        var act = () => layer.AddAdapter("default", new LoraConfig { Rank = 7 });
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*Rank 7 exceeds*");
    }

    [Theory]
    [InlineData(0, 16, 0.0)]
    [InlineData(4, 0, 0.0)]
    [InlineData(4, 16, 1.0)]
    public void InvalidConfigIsRejected(int rank, double alpha, double dropout)
    {
        var act = () => new LoraConfig { Rank = rank, Alpha = alpha, Dropout = dropout };
        act.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void AdaptersAreKeptByNameAndSwitchable()
    {
        using var layer = Make();
        layer.AddAdapter("second", new LoraConfig { Rank = 2 });
        layer.AdapterNames.Should().BeEquivalentTo(["default", "second"]);
        layer.ActiveAdapter.Should().Be("second");
        layer.named_parameters().Select(p => p.name).Should().Contain(
            ["base_layer.weight", "lora_A.default.weight", "lora_B.default.weight", "lora_A.second.weight"]);

        using var scope = NewDisposeScope();
        using (no_grad()) layer.LoraB("default").normal_();
        var x = randn(2, 16);
        layer.forward(x).Identical(layer.BaseLayer.forward(x)).Should().BeTrue("'second' is fresh");
        layer.SetActiveAdapter("default");
        layer.forward(x).Identical(layer.BaseLayer.forward(x)).Should().BeFalse();
        layer.SetActiveAdapter(null);
        layer.forward(x).Identical(layer.BaseLayer.forward(x)).Should().BeTrue();

        layer.DeleteAdapter("second");
        layer.AdapterNames.Should().Equal("default");
        layer.named_parameters().Select(p => p.name).Should().NotContain("lora_A.second.weight");
    }
}
