using MLNet.Lora.Encoders;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Encoders;

public class FastDropoutTests
{
    [Fact]
    public void KeepsOneMinusPOfTheElementsAndScalesThem()
    {
        using var scope = NewDisposeScope();
        torch.random.manual_seed(1);
        var x = ones(1000, 1000);
        var y = FastDropout.Apply(x, 0.1, training: true);
        double kept = y.ne(0).to(float64).mean().item<double>();
        kept.Should().BeApproximately(0.9, 0.002, "each element is kept with probability 1 - p (binomial sd 0.0003)");
        y.masked_select(y.ne(0)).allclose(full(1, 1 / 0.9f)).Should().BeTrue("kept elements are scaled by 1 / (1 - p)");
        y.requires_grad.Should().BeFalse();
    }

    [Fact]
    public void IsTheIdentityOutsideTrainingOrWithoutProbability()
    {
        using var scope = NewDisposeScope();
        var x = randn(64, 128);
        ReferenceEquals(FastDropout.Apply(x, 0.1, training: false), x).Should().BeTrue();
        ReferenceEquals(FastDropout.Apply(x, 0.0, training: true), x).Should().BeTrue();
    }

    [Fact]
    public void MasksFollowTorchsSeedAndDifferFromCallToCall()
    {
        using var scope = NewDisposeScope();
        var x = randn(64, 128);
        torch.random.manual_seed(7);
        var first = FastDropout.Apply(x, 0.3, training: true);
        var second = FastDropout.Apply(x, 0.3, training: true);
        torch.random.manual_seed(7);
        var again = FastDropout.Apply(x, 0.3, training: true);
        again.Identical(first).Should().BeTrue("torch.manual_seed governs the masks");
        second.Identical(first).Should().BeFalse("each call draws a new mask");
    }

    [Fact]
    public void GradientIsTheScaledMask()
    {
        using var scope = NewDisposeScope();
        torch.random.manual_seed(2);
        var x = (rand(50, 100) + 1).requires_grad_(true);
        var y = FastDropout.Apply(x, 0.25, training: true);
        y.sum().backward();
        x.grad!.allclose(y.detach() / x.detach()).Should().BeTrue("dy/dx is mask / (1 - p), and y = x · mask / (1 - p)");
    }

    [Fact]
    public void VectorAndScalarPathsDrawTheSameBits()
    {
        var longer = new byte[100];
        var shorter = new byte[31];           // below one 32-element block: the scalar loop alone
        FastDropout.Fill(longer, 0x1234_5678_9ABC_DEF0UL, 1u << 30);
        FastDropout.Fill(shorter, 0x1234_5678_9ABC_DEF0UL, 1u << 30);
        longer.AsSpan(0, 31).SequenceEqual(shorter).Should().BeTrue();
        longer.Count(b => b == 1).Should().BeInRange(55, 95, "about three quarters are kept at threshold 2^30");
    }

    [Theory]
    [InlineData(1024)]
    [InlineData(37)]
    public void AChunkStartingAtAnOffsetDrawsTheWholeMasksBits(int first)
    {
        var whole = new byte[3000];
        var chunk = new byte[1500];
        FastDropout.Fill(whole, 42UL, 1u << 31);
        FastDropout.Fill(chunk, 42UL, 1u << 31, (uint)first);
        chunk.AsSpan().SequenceEqual(whole.AsSpan(first, chunk.Length)).Should().BeTrue("parallel chunks must reproduce the sequential mask");
    }

    [Fact]
    public void ALargeMaskFilledInParallelKeepsTheRightShare()
    {
        using var mask = FastDropout.KeepMask([3, 1 << 20], 0.1);   // three parallel chunks
        double kept = mask.to_type(ScalarType.Float32).mean().item<float>();
        kept.Should().BeApproximately(0.9, 0.002);
    }

    [Fact]
    public void OtherDtypesAndSmallTensorsFallBackToTorchDropout()
    {
        using var scope = NewDisposeScope();
        var small = ones(4, 4);
        var y = FastDropout.Apply(small, 0.5, training: true);
        y.masked_select(y.ne(0)).allclose(full(1, 2f)).Should().BeTrue();
        var doubles = ones(100, 100, dtype: float64);
        FastDropout.Apply(doubles, 0.5, training: true).dtype.Should().Be(ScalarType.Float64);
    }
}
