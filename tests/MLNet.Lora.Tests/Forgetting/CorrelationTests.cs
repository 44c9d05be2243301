using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Tests.Forgetting;

public class CorrelationTests
{
    [Fact]
    public void PearsonKnownAnswer()
    {
        // dx = [-2,-1,0,1,2], dy = [-2,0,1,0,1]: Σdxdy = 6, Σdx² = 10, Σdy² = 6 → 6/√60.
        Correlation.Pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]).Should().BeApproximately(6 / Math.Sqrt(60), 1e-12);
        Correlation.Pearson([1, 2, 3], [30, 20, 10]).Should().BeApproximately(-1, 1e-12);
    }

    [Fact]
    public void SpearmanAveragesTiedRanks()
    {
        // Ranks of y = [2,4,5,4,5] are [1, 2.5, 4.5, 2.5, 4.5]: Σ d_x d_r = 7, Σ d_x² = 10, Σ d_r² = 9 → 7/√90.
        Correlation.Spearman([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]).Should().BeApproximately(7 / Math.Sqrt(90), 1e-12);
        Correlation.Ranks([2, 4, 5, 4, 5]).Should().Equal(1, 2.5, 4.5, 2.5, 4.5);
    }

    [Fact]
    public void SpearmanIsOneForAnyMonotoneRelation()
    {
        Correlation.Spearman([1, 2, 3, 4], [1, 4, 9, 16]).Should().BeApproximately(1, 1e-12);
        Correlation.Spearman([1, 2, 3, 4], [-Math.Exp(1), -Math.Exp(2), -Math.Exp(3), -Math.Exp(4)]).Should().BeApproximately(-1, 1e-12);
    }

    [Fact]
    public void ZeroVarianceIsNaN()
    {
        Correlation.Pearson([0.1, 0.1, 0.1], [1, 2, 3]).Should().Be(double.NaN);
        Correlation.Spearman([1, 2, 3], [7, 7, 7]).Should().Be(double.NaN);
    }

    [Fact]
    public void RejectsInvalidInput()
    {
        FluentActions.Invoking(() => Correlation.Pearson([1, 2], [1, 2, 3])).Should().Throw<ArgumentException>().WithParameterName("y");
        FluentActions.Invoking(() => Correlation.Pearson([1], [1])).Should().Throw<ArgumentException>().WithParameterName("x");
        FluentActions.Invoking(() => Correlation.Spearman([1, double.NaN], [1, 2])).Should().Throw<ArgumentException>().WithParameterName("x");
        FluentActions.Invoking(() => Correlation.Pearson(null!, [1, 2])).Should().Throw<ArgumentNullException>().WithParameterName("x");
    }
}
