using MLNet.Lora.Forgetting;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Forgetting;

public class GradientConflictTests
{
    [Fact]
    public void KnownCosinesOverConcatenatedTensors()
    {
        using var scope = torch.NewDisposeScope();
        // a = [1, 2 | 2] as a 2-vector and a 1×1 matrix.
        Tensor[] a = [torch.tensor(new float[] { 1, 2 }), torch.tensor(new float[] { 2 }).reshape(1, 1)];
        Tensor[] parallel = [torch.tensor(new float[] { 3, 6 }), torch.tensor(new float[] { 6 }).reshape(1, 1)];
        Tensor[] opposite = [torch.tensor(new float[] { -0.5f, -1 }), torch.tensor(new float[] { -1 }).reshape(1, 1)];
        Tensor[] orthogonal = [torch.tensor(new float[] { 2, -1 }), torch.tensor(new float[] { 0 }).reshape(1, 1)];
        // b = [0, 0 | 3]: a·b = 6, |a| = 3, |b| = 3 → 2/3.
        Tensor[] partial = [torch.tensor(new float[] { 0, 0 }), torch.tensor(new float[] { 3 }).reshape(1, 1)];
        Tensor[] zero = [torch.zeros(2), torch.zeros(1, 1)];

        GradientConflict.Cosine(a, parallel).Should().BeApproximately(1, 1e-12);
        GradientConflict.Cosine(a, opposite).Should().BeApproximately(-1, 1e-12);
        GradientConflict.Cosine(a, orthogonal).Should().Be(0);
        GradientConflict.Cosine(a, partial).Should().BeApproximately(2.0 / 3, 1e-12);
        GradientConflict.Cosine(a, zero).Should().Be(0);
    }

    [Fact]
    public void RejectsMismatchedGradients()
    {
        using var scope = torch.NewDisposeScope();
        Tensor[] a = [torch.ones(2), torch.ones(3)];
        FluentActions.Invoking(() => GradientConflict.Cosine(a, [torch.ones(2)])).Should().Throw<ArgumentException>().WithParameterName("b");
        FluentActions.Invoking(() => GradientConflict.Cosine(a, [torch.ones(2), torch.ones(1, 3)])).Should().Throw<ArgumentException>().WithParameterName("b");
        FluentActions.Invoking(() => GradientConflict.Cosine([], [])).Should().Throw<ArgumentException>().WithParameterName("a");
    }

    [Fact]
    public void TallyReportsMeanCountAndConflictRatePerKind()
    {
        var tally = new GradientConflictTally();
        tally.Record("query", 0.5);
        tally.Record("query", -0.2);
        tally.Record("query", -0.6);
        tally.Record("value", 0.0);   // zero is not a conflict
        tally.Record("value", 0.4);

        tally.Count.Should().Be(5);
        var query = tally.Summary("query");
        query.Count.Should().Be(3);
        query.MeanCosine.Should().BeApproximately(-0.1, 1e-12);
        query.ConflictRate.Should().BeApproximately(2.0 / 3, 1e-12);

        tally.Summarize().Should().Equal(
            query,
            new GradientConflictSummary("value", 2, 0.2, 0.0));
    }

    [Fact]
    public void TallyRejectsBadInput()
    {
        var tally = new GradientConflictTally();
        FluentActions.Invoking(() => tally.Record(" ", 0.1)).Should().Throw<ArgumentException>().WithParameterName("moduleKind");
        FluentActions.Invoking(() => tally.Record("ffn", 1.5)).Should().Throw<ArgumentException>().WithParameterName("cosine");
        FluentActions.Invoking(() => tally.Record("ffn", double.NaN)).Should().Throw<ArgumentException>().WithParameterName("cosine");
        FluentActions.Invoking(() => tally.Summary("ffn")).Should().Throw<KeyNotFoundException>();
    }
}
