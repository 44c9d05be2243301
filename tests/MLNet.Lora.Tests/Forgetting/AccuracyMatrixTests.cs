using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Tests.Forgetting;

public class AccuracyMatrixTests
{
    // R[i][j]: accuracy on task j after training through task i. Task 0 improves after task 1 (0.7 → 0.9),
    // so the Max and First forgetting conventions disagree on it.
    private static readonly double[][] R =
    [
        [0.70, 0.10, 0.20],
        [0.90, 0.80, 0.30],
        [0.60, 0.75, 0.85],
    ];

    private static readonly double[] Baseline = [0.10, 0.05, 0.20];

    [Fact]
    public void HandComputedSummaries()
    {
        var m = new AccuracyMatrix(R, Baseline);
        m.TaskCount.Should().Be(3);
        m[1, 0].Should().Be(0.90);
        m.AverageAccuracy.Should().BeApproximately((0.60 + 0.75 + 0.85) / 3, 1e-12);   // 0.7333…

        m.Forgetting(0, ForgettingConvention.Max).Should().BeApproximately(0.30, 1e-12);    // max(0.7, 0.9) − 0.6
        m.Forgetting(0, ForgettingConvention.First).Should().BeApproximately(0.10, 1e-12);  // 0.7 − 0.6
        m.Forgetting(1).Should().BeApproximately(0.05, 1e-12);                              // R[1][1] − 0.75 (R[0][1] is before task 1 was learnt)
        m.Forgetting(1, ForgettingConvention.First).Should().BeApproximately(0.05, 1e-12);  // 0.8 − 0.75
        m.AverageForgetting().Should().BeApproximately(0.175, 1e-12);
        m.AverageForgetting(ForgettingConvention.First).Should().BeApproximately(0.075, 1e-12);

        m.BackwardTransfer.Should().BeApproximately(((0.60 - 0.70) + (0.75 - 0.80)) / 2, 1e-12);  // −0.075
        m.ForwardTransfer.Should().BeApproximately(((0.10 - 0.05) + (0.30 - 0.20)) / 2, 1e-12);   // 0.075
    }

    [Fact]
    public void MaxForgettingIgnoresAccuraciesMeasuredBeforeTheTaskWasLearnt()
    {
        // R[0][1] = 0.95 is task 1 measured before training on it (for instance a probe); it is not knowledge to forget.
        var m = new AccuracyMatrix([[0.80, 0.95, 0.30], [0.70, 0.85, 0.40], [0.60, 0.75, 0.90]]);
        m.Forgetting(1, ForgettingConvention.Max).Should().BeApproximately(0.85 - 0.75, 1e-12);
        m.Forgetting(0, ForgettingConvention.Max).Should().BeApproximately(0.80 - 0.60, 1e-12);
    }

    [Fact]
    public void ForwardTransferNeedsBaseline()
    {
        var m = new AccuracyMatrix(R);
        m.HasBaseline.Should().BeFalse();
        FluentActions.Invoking(() => m.ForwardTransfer).Should().Throw<InvalidOperationException>().WithMessage("*baseline*");
    }

    [Fact]
    public void CopiesItsInput()
    {
        var rows = R.Select(r => (double[])r.Clone()).ToArray();
        var m = new AccuracyMatrix(rows);
        rows[2][0] = 0;
        m.AverageAccuracy.Should().BeApproximately(2.2 / 3, 1e-12);
    }

    [Fact]
    public void SingleTaskHasAccuracyButNoForgetting()
    {
        var m = new AccuracyMatrix([[0.8]], [0.5]);
        m.AverageAccuracy.Should().Be(0.8);
        FluentActions.Invoking(() => m.AverageForgetting()).Should().Throw<InvalidOperationException>();
        FluentActions.Invoking(() => m.BackwardTransfer).Should().Throw<InvalidOperationException>();
        FluentActions.Invoking(() => m.ForwardTransfer).Should().Throw<InvalidOperationException>();
    }

    [Fact]
    public void RejectsInvalidInput()
    {
        FluentActions.Invoking(() => new AccuracyMatrix([])).Should().Throw<ArgumentException>().WithParameterName("accuracies");
        FluentActions.Invoking(() => new AccuracyMatrix([[0.5, 0.5], [0.5]])).Should().Throw<ArgumentException>().WithParameterName("accuracies");
        FluentActions.Invoking(() => new AccuracyMatrix([[0.5, 1.2], [0.5, 0.5]])).Should().Throw<ArgumentException>().WithParameterName("accuracies");
        FluentActions.Invoking(() => new AccuracyMatrix([[double.NaN]])).Should().Throw<ArgumentException>().WithParameterName("accuracies");
        FluentActions.Invoking(() => new AccuracyMatrix([[0.5, 0.5], [0.5, 0.5]], [0.1])).Should().Throw<ArgumentException>().WithParameterName("baseline");
        FluentActions.Invoking(() => new AccuracyMatrix(null!)).Should().Throw<ArgumentNullException>().WithParameterName("accuracies");

        var m = new AccuracyMatrix(R);
        FluentActions.Invoking(() => m.Forgetting(2)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("task");
        FluentActions.Invoking(() => m.Forgetting(-1)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("task");
        FluentActions.Invoking(() => m.Forgetting(0, (ForgettingConvention)7)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("convention");
    }
}
