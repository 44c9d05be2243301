using MLNet.Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Training;

public class RetentionPenaltyTests
{
    private static Parameter Weights(params float[] values) => new(tensor(values), requires_grad: true);

    [Fact]
    public void L2SpIsZeroAtTheStartAndHalfLambdaTimesTheSquaredDistanceAfter()
    {
        var w = Weights(1f, -2f, 3f);
        var v = Weights(0.5f);
        using var penalty = new WeightAnchor([w, v], strength: 4);
        penalty.Loss().item<float>().Should().Be(0);

        using (no_grad())
        {
            w.add_(tensor(new[] { 0.1f, 0f, -0.2f }));
            v.add_(tensor(new[] { 1f }));
        }
        // (4 / 2)·(0.1² + 0.2² + 1²) = 2·1.05
        penalty.Loss().item<float>().Should().BeApproximately(2.1f, 1e-5f);

        // It grows with the distance, and its gradient is λ·(θ − θ₀).
        var loss = penalty.Loss();
        loss.backward();
        w.grad!.data<float>().ToArray().Should().Equal([0.4f, 0f, -0.8f], (a, b) => Math.Abs(a - b) < 1e-5);
    }

    [Fact]
    public void EwcWeighsEachWeightByItsFisherScaledToMeanOne()
    {
        var w = Weights(0f, 0f);
        // Fisher (1, 3): mean 2, so the weights are 0.5 and 1.5.
        using var penalty = new WeightAnchor([w], strength: 2, importance: [tensor(new[] { 1f, 3f })]);
        using (no_grad()) w.add_(tensor(new[] { 1f, 1f }));
        // (2 / 2)·(0.5·1 + 1.5·1) = 2
        penalty.Loss().item<float>().Should().BeApproximately(2f, 1e-6f);
    }

    [Fact]
    public void TheFisherDiagonalIsTheMeanSquaredPerExampleGradient()
    {
        // ℓ_n = ½ (w·x_n − y_n)², so ∂ℓ_n/∂w = (w·x_n − y_n)·x_n.
        var w = Weights(1f, 2f);
        float[][] x = [[1, 0], [0, 1], [1, 1]];
        float[] y = [0, 1, 1];
        var fisher = FisherDiagonal.Estimate([w], 3, n => (w.dot(tensor(x[n])) - y[n]).square().mul(0.5));
        // Residuals: 1 − 0 = 1, 2 − 1 = 1, 3 − 1 = 2. Gradients (1, 0), (0, 1), (2, 2); squares averaged: ((1 + 0 + 4)/3, (0 + 1 + 4)/3).
        fisher[0].data<float>().ToArray().Should().Equal([5f / 3, 5f / 3], (a, b) => Math.Abs(a - b) < 1e-6);
        // Not the square of the mean gradient, (1, 1): each example takes its own backward pass.
    }

    [Fact]
    public void TheOrthogonalityPenaltyIsZeroForOrthogonalSubspacesAndLambdaTimesTheOverlapOtherwise()
    {
        // A is [r, in]: the old adapter spans e1, e2; the new one e3, e4.
        var old = tensor(new float[,] { { 1, 0, 0, 0 }, { 0, 1, 0, 0 } });
        var orthogonal = new Parameter(tensor(new float[,] { { 0, 0, 1, 0 }, { 0, 0, 0, 2 } }));
        using (var penalty = new OrthogonalSubspace([(orthogonal, [old.clone()])], strength: 0.5))
            penalty.Loss().item<float>().Should().Be(0);

        // A_old·A_newᵀ = [[1, 0], [0, 3]]: ‖·‖² = 10, times λ = 0.5.
        var overlapping = new Parameter(tensor(new float[,] { { 1, 0, 1, 0 }, { 0, 3, 0, 0 } }));
        using var overlap = new OrthogonalSubspace([(overlapping, [old.clone()])], strength: 0.5);
        overlap.Loss().item<float>().Should().BeApproximately(5f, 1e-6f);
    }
}
