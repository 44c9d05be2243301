using MLNet.Lora.Forgetting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Forgetting;

public class SharpnessTests
{
    /// <summary>H = Q diag(λ) Qᵀ with the Householder reflection Q = I − (2/3)·11ᵀ, so H is dense but its spectrum is λ.</summary>
    private static Tensor SymmetricWithEigenvalues(double[] eigenvalues)
    {
        using var scope = torch.NewDisposeScope();
        var q = torch.eye(3, dtype: ScalarType.Float64) - torch.full([3, 3], 2.0 / 3, ScalarType.Float64);
        return q.matmul(torch.diag(torch.tensor(eigenvalues))).matmul(q.T).MoveToOuterDisposeScope();
    }

    /// <summary>0.5 wᵀHw with w = [w1; w2] split over two parameters, in the parameters' dtype.</summary>
    private static Func<Tensor> Quadratic(Tensor h, Parameter w1, Parameter w2)
    {
        var hp = h.to(w1.dtype);
        return () =>
        {
            var w = torch.cat([w1, w2]);
            return 0.5 * w.dot(hp.matmul(w));
        };
    }

    private static int[] Bits(Tensor t) => t.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public void TopEigenvalueOfAQuadraticIsItsLargestHessianEigenvalue()
    {
        using var scope = torch.NewDisposeScope();
        var h = SymmetricWithEigenvalues([5, 2, 0.5]);
        var w1 = new Parameter(torch.tensor(new float[] { 0.3f, -1.1f }));
        var w2 = new Parameter(torch.tensor(new float[] { 0.7f }));
        var linear = new Parameter(torch.tensor(new float[] { 0.2f }));   // enters linearly: a zero Hessian block
        var unused = new Parameter(torch.tensor(new float[] { 1f, 2f })); // not in the loss at all
        var quadratic = Quadratic(h, w1, w2);
        Func<Tensor> loss = () => quadratic() + 3 * linear.sum();
        var before = new[] { w1, w2, linear, unused }.Select(p => Bits(p)).ToArray();

        double top = Sharpness.TopHessianEigenvalue(loss, [w1, w2, linear, unused]);

        top.Should().BeApproximately(5, 1e-3);
        new[] { w1, w2, linear, unused }.Select(p => Bits(p)).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
        new[] { w1, w2, linear, unused }.Select(p => p.grad).Should().AllSatisfy(g => g.Should().BeNull());
    }

    [Fact]
    public void TopEigenvalueIsTheOneOfLargestMagnitudeEvenWhenNegative()
    {
        using var scope = torch.NewDisposeScope();
        var h = SymmetricWithEigenvalues([-6, 2, 1]);
        var w1 = new Parameter(torch.zeros(2, ScalarType.Float64));
        var w2 = new Parameter(torch.zeros(1, ScalarType.Float64));
        Sharpness.TopHessianEigenvalue(Quadratic(h, w1, w2), [w1, w2], iterations: 100, seed: 5, tolerance: 1e-10)
            .Should().BeApproximately(-6, 1e-6);
    }

    [Fact]
    public void ZeroHessianGivesZero()
    {
        using var scope = torch.NewDisposeScope();
        var w = new Parameter(torch.tensor(new float[] { 1, 2 }));
        Sharpness.TopHessianEigenvalue(() => (w * 3).sum(), [w]).Should().Be(0);
    }

    [Fact]
    public void SamSharpnessMatchesTheClosedForm()
    {
        // L = ½ wᵀHw, g = Hw, ε = ρ g/‖g‖: L(w+ε) − L(w) = ρ‖g‖ + ½ρ² gᵀHg/‖g‖².
        // H = diag(5, 2, 0.5), w = 1: ‖g‖² = 29.25, gᵀHg = 133.125 → 0.2761054482239018.
        using var scope = torch.NewDisposeScope();
        var h = torch.diag(torch.tensor(new double[] { 5, 2, 0.5 }));
        var w1 = new Parameter(torch.ones(2, ScalarType.Float64));
        var w2 = new Parameter(torch.ones(1, ScalarType.Float64));
        double rho = 0.05;
        double expected = rho * Math.Sqrt(29.25) + 0.5 * rho * rho * 133.125 / 29.25;

        double sam = Sharpness.SamSharpness(Quadratic(h, w1, w2), [w1, w2], rho);

        sam.Should().BeApproximately(expected, 1e-12);
        expected.Should().BeApproximately(0.2761054482239018, 1e-15);
        w1.data<double>().ToArray().Should().Equal(1.0, 1.0);
        w2.grad.Should().BeNull();
    }

    [Fact]
    public void SamSharpnessRestoresFloat32ParametersBitExactly()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(1, torch.CPU);
        var h = SymmetricWithEigenvalues([5, 2, 0.5]);
        var w1 = new Parameter(torch.randn(2, generator: gen));
        var w2 = new Parameter(torch.randn(1, generator: gen));
        var before1 = Bits(w1);
        var before2 = Bits(w2);

        Sharpness.SamSharpness(Quadratic(h, w1, w2), [w1, w2], rho: 0.37).Should().BePositive();

        Bits(w1).Should().Equal(before1);
        Bits(w2).Should().Equal(before2);
    }

    [Fact]
    public void SamSharpnessRestoresParametersWhenTheLossThrows()
    {
        using var scope = torch.NewDisposeScope();
        var w = new Parameter(torch.tensor(new float[] { 0.1f, 0.2f }));
        var before = Bits(w);
        int calls = 0;
        Func<Tensor> loss = () => ++calls == 2 ? throw new InvalidOperationException("boom") : w.square().sum();
        FluentActions.Invoking(() => Sharpness.SamSharpness(loss, [w])).Should().Throw<InvalidOperationException>();
        Bits(w).Should().Equal(before);
    }

    [Fact]
    public void RejectsBadArguments()
    {
        using var scope = torch.NewDisposeScope();
        var w = new Parameter(torch.ones(2));
        var frozen = new Parameter(torch.ones(2), requires_grad: false);
        Func<Tensor> loss = () => w.square().sum();
        FluentActions.Invoking(() => Sharpness.TopHessianEigenvalue(loss, [])).Should().Throw<ArgumentException>().WithParameterName("parameters");
        FluentActions.Invoking(() => Sharpness.TopHessianEigenvalue(loss, [frozen])).Should().Throw<ArgumentException>().WithParameterName("parameters");
        FluentActions.Invoking(() => Sharpness.TopHessianEigenvalue(loss, [w], iterations: 0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("iterations");
        FluentActions.Invoking(() => Sharpness.TopHessianEigenvalue(loss, [w], tolerance: double.NaN)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("tolerance");
        FluentActions.Invoking(() => Sharpness.TopHessianEigenvalue(() => w * 2, [w])).Should().Throw<ArgumentException>().WithParameterName("loss");
        FluentActions.Invoking(() => Sharpness.SamSharpness(() => w.detach().sum(), [w])).Should().Throw<ArgumentException>().WithParameterName("loss");
        FluentActions.Invoking(() => Sharpness.SamSharpness(loss, [w], rho: 0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("rho");
    }
}
