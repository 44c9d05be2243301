using MLNet.Lora.Forgetting;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Forgetting;

public class RepresentationSimilarityTests
{
    [Fact]
    public void OneDimensionalCkaIsSquaredCorrelation()
    {
        // Centered x = [-1, 0, 1], y = [-1, 1, 0]: (x·y)² / (|x|²|y|²) = 1 / (2·2).
        using var x = torch.tensor(new double[] { 1, 2, 3 }).reshape(3, 1);
        using var y = torch.tensor(new double[] { 1, 3, 2 }).reshape(3, 1);
        RepresentationSimilarity.LinearCka(x, y).Should().BeApproximately(0.25, 1e-12);
        RepresentationSimilarity.RepresentationDrift(x, y).Should().BeApproximately(0.75, 1e-12);
    }

    [Fact]
    public void HandComputedTwoByOneExample()
    {
        // X is already centered: XᵀX = 2I (‖·‖_F = 2√2), YᵀY = [2], YᵀX = [2, 0] → 4 / (2√2 · 2) = 1/√2.
        using var x = torch.tensor(new double[] { 1, 0, 0, 1, -1, 0, 0, -1 }).reshape(4, 2);
        using var y = torch.tensor(new double[] { 1, 0, -1, 0 }).reshape(4, 1);
        RepresentationSimilarity.LinearCka(x, y).Should().BeApproximately(1 / Math.Sqrt(2), 1e-12);
        RepresentationSimilarity.LinearCka(y, x).Should().BeApproximately(1 / Math.Sqrt(2), 1e-12);
    }

    [Fact]
    public void InvariantToOrthogonalTransformScalingAndTranslation()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(7, torch.CPU);
        var x = torch.randn(50, 6, generator: gen);
        var q = torch.linalg.qr(torch.randn(6, 6, ScalarType.Float64, generator: gen)).Q.to(ScalarType.Float32);
        var c = torch.randn(1, 6, generator: gen);

        RepresentationSimilarity.LinearCka(x, x).Should().BeApproximately(1, 1e-9);
        RepresentationSimilarity.LinearCka(x, x.matmul(q)).Should().BeApproximately(1, 1e-6);
        RepresentationSimilarity.LinearCka(x, -3.5f * x + c).Should().BeApproximately(1, 1e-6);
    }

    [Fact]
    public void UnrelatedRepresentationsScoreLowAndSymmetric()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(11, torch.CPU);
        var x = torch.randn(400, 3, ScalarType.Float64, generator: gen);
        var y = torch.randn(400, 4, ScalarType.Float64, generator: gen);
        double cka = RepresentationSimilarity.LinearCka(x, y);
        cka.Should().BeInRange(0, 0.1);
        RepresentationSimilarity.LinearCka(y, x).Should().BeApproximately(cka, 1e-12);
    }

    [Fact]
    public void ZeroVarianceGivesZero()
    {
        using var x = torch.tensor(new float[] { 0.1f, 0.7f, 0.1f, 0.7f, 0.1f, 0.7f }).reshape(3, 2);
        using var y = torch.tensor(new float[] { 1, 2, 3 }).reshape(3, 1);
        RepresentationSimilarity.LinearCka(x, y).Should().Be(0);
        RepresentationSimilarity.LinearCka(y, x).Should().Be(0);
        RepresentationSimilarity.RepresentationDrift(x, x).Should().Be(1);
    }

    [Fact]
    public void RejectsBadShapes()
    {
        using var a = torch.zeros(3, 2);
        using var b = torch.zeros(4, 2);
        using var one = torch.zeros(1, 2);
        using var flat = torch.zeros(3);
        using var nan = torch.full(3, 2, double.NaN);
        FluentActions.Invoking(() => RepresentationSimilarity.LinearCka(a, b)).Should().Throw<ArgumentException>().WithParameterName("y");
        FluentActions.Invoking(() => RepresentationSimilarity.LinearCka(flat, a)).Should().Throw<ArgumentException>().WithParameterName("x");
        FluentActions.Invoking(() => RepresentationSimilarity.LinearCka(one, one)).Should().Throw<ArgumentException>().WithParameterName("x");
        FluentActions.Invoking(() => RepresentationSimilarity.LinearCka(a, nan)).Should().Throw<ArgumentException>().WithParameterName("y");
        FluentActions.Invoking(() => RepresentationSimilarity.LinearCka(null!, a)).Should().Throw<ArgumentNullException>().WithParameterName("x");
    }
}
