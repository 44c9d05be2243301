using MLNet.Lora.Forgetting;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Forgetting;

public class AttentionDivergenceTests
{
    private static double[] Values(Tensor t) => t.cpu().data<double>().ToArray();

    [Fact]
    public void KnownAnswers()
    {
        // Rows: identical → 0; disjoint → 1; P = (1, 0), Q = (½, ½): M = (¾, ¼),
        // JS = ½[log2(4/3)] + ½[½ log2(2/3) + ½ log2(2)] = 1.5 − ¾·log2 3 ≈ 0.311278.
        using var scope = torch.NewDisposeScope();
        var p = torch.tensor(new double[] { 0.3, 0.7, 1, 0, 1, 0 }).reshape(3, 2);
        var q = torch.tensor(new double[] { 0.3, 0.7, 0, 1, 0.5, 0.5 }).reshape(3, 2);
        var js = AttentionDivergence.JensenShannon(p, q);
        js.shape.Should().Equal(3);
        var v = Values(js);
        v[0].Should().Be(0);
        v[1].Should().BeApproximately(1, 1e-12);
        v[2].Should().BeApproximately(1.5 - 0.75 * Math.Log2(3), 1e-12);
    }

    [Fact]
    public void SymmetricAndFiniteWithZeros()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new torch.Generator(3, torch.CPU);
        var p = torch.randn(2, 4, 5, generator: gen).softmax(-1);
        var q = torch.randn(2, 4, 5, generator: gen).softmax(-1);
        p[0, 0] = torch.tensor(new float[] { 0, 0, 1, 0, 0 }); // zeros in p only
        var pq = AttentionDivergence.JensenShannon(p, q);
        var qp = AttentionDivergence.JensenShannon(q, p);
        pq.shape.Should().Equal(2, 4);
        pq.dtype.Should().Be(ScalarType.Float64);
        Values(pq).Should().Equal(Values(qp), (a, b) => Math.Abs(a - b) < 1e-15);
        Values(pq).Should().OnlyContain(d => d >= 0 && d <= 1);
    }

    [Fact]
    public void MeanPerHeadSkipsPadQueryRows()
    {
        // batch 2, heads 2, seq 2. Per-row JS: head 0 rows are all 1 (disjoint) except batch 1's pad row (set to 0);
        // head 1 rows are 0 except batch 1's pad row, which is disjoint (1) and must be ignored.
        using var scope = torch.NewDisposeScope();
        var p = torch.zeros(2, 2, 2, 2, ScalarType.Float64);
        var q = torch.zeros(2, 2, 2, 2, ScalarType.Float64);
        p[.., 0, .., 0] = 1; q[.., 0, .., 1] = 1;  // head 0 disjoint everywhere
        p[.., 1, .., 0] = 1; q[.., 1, .., 0] = 1;  // head 1 identical everywhere
        q[1, 0, 1] = torch.tensor(new double[] { 1, 0 });  // pad row of head 0: identical
        q[1, 1, 1] = torch.tensor(new double[] { 0, 1 });  // pad row of head 1: disjoint
        var mask = torch.tensor(new long[] { 1, 1, 1, 0 }).reshape(2, 2);
        var perHead = AttentionDivergence.MeanPerHead(p, q, mask);
        perHead.Should().HaveCount(2);
        perHead[0].Should().BeApproximately(1, 1e-12);
        perHead[1].Should().Be(0);
        AttentionDivergence.ShareAbove(perHead, 0.5).Should().Be(0.5);
    }

    [Fact]
    public void MeanPerHeadAveragesOverRealRowsOfTheWholeBatch()
    {
        // Head 0: 3 real rows, one of which is disjoint → 1/3.
        using var scope = torch.NewDisposeScope();
        var p = torch.zeros(2, 1, 2, 2, ScalarType.Float64);
        p[.., .., .., 0] = 1;
        var q = p.clone();
        q[0, 0, 1] = torch.tensor(new double[] { 0, 1 });
        var mask = torch.tensor(new float[] { 1, 1, 1, 0 }).reshape(2, 2);
        AttentionDivergence.MeanPerHead(p, q, mask)[0].Should().BeApproximately(1.0 / 3, 1e-12);
    }

    [Fact]
    public void ShareAboveIsStrict()
    {
        AttentionDivergence.ShareAbove([0.1, 0.2, 0.3, 0.4], 0.2).Should().Be(0.5);
        AttentionDivergence.ShareAbove([0.1], 0.5).Should().Be(0);
        FluentActions.Invoking(() => AttentionDivergence.ShareAbove([], 0.5)).Should().Throw<ArgumentException>().WithParameterName("perHead");
        FluentActions.Invoking(() => AttentionDivergence.ShareAbove([0.1], double.NaN)).Should().Throw<ArgumentException>().WithParameterName("threshold");
    }

    [Fact]
    public void RejectsBadInputs()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.full(1, 2, 3, 3, 1.0 / 3);
        FluentActions.Invoking(() => AttentionDivergence.JensenShannon(a, torch.zeros(3))).Should().Throw<ArgumentException>().WithParameterName("q");
        FluentActions.Invoking(() => AttentionDivergence.JensenShannon(torch.tensor(new[] { -0.5, 1.5 }), torch.tensor(new[] { 0.5, 0.5 })))
            .Should().Throw<ArgumentException>().WithParameterName("p");
        FluentActions.Invoking(() => AttentionDivergence.MeanPerHead(a, a, torch.zeros(1, 3))).Should().Throw<ArgumentException>().WithParameterName("attentionMask");
        FluentActions.Invoking(() => AttentionDivergence.MeanPerHead(a, a, torch.ones(1, 4))).Should().Throw<ArgumentException>().WithParameterName("attentionMask");
        FluentActions.Invoking(() => AttentionDivergence.MeanPerHead(torch.zeros(2, 3), a, torch.ones(1, 3))).Should().Throw<ArgumentException>().WithParameterName("pAttn");
    }
}
