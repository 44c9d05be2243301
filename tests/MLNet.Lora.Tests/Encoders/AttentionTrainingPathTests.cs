using MLNet.Lora.Encoders;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNet.Lora.Tests.Encoders;

public class AttentionTrainingPathTests
{
    private static readonly BertConfig Config = new()
    {
        VocabSize = 50, HiddenSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 4, IntermediateSize = 64,
        MaxPositionEmbeddings = 16, AttentionProbsDropoutProb = 0.2, HiddenDropoutProb = 0.1,
    };

    [Fact]
    public void TrainingAttentionIsSoftmaxWithADropoutMaskThenValues()
    {
        using var scope = NewDisposeScope();
        torch.random.manual_seed(4);
        using var attention = new BertSelfAttention(Config);
        attention.train();
        var p = attention.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        // 3 x 4 heads x 40 x 40 probabilities: large enough for the fast mask (small tensors use F.dropout).
        var hidden = randn(3, 40, 32).requires_grad_(true);
        var lengths = new[] { 40, 25, 9 };
        var padding = stack(lengths.Select(n => cat(new[] { ones(n), zeros(40 - n) })).ToArray());
        var additive = ((1 - padding) * float.MinValue).view(3, 1, 1, 40);

        torch.random.manual_seed(11);
        var (context, _) = attention.forward(hidden, additive, outputAttentions: false);
        torch.random.manual_seed(11);
        var keep = FastDropout.KeepMask([3, 4, 40, 40], 0.2);    // the mask the forward drew: the same first draw after the seed

        Tensor Heads(string name) => F.linear(hidden, p[$"{name}.weight"], p[$"{name}.bias"]).view(3, 40, 4, 8).transpose(1, 2);
        var probabilities = (Heads("query").matmul(Heads("key").transpose(-1, -2)) / Math.Sqrt(8) + additive).softmax(-1);
        var expected = (probabilities * keep / 0.8).matmul(Heads("value")).transpose(1, 2).reshape(3, 40, 32);
        context.allclose(expected, rtol: 1e-5, atol: 1e-6).Should().BeTrue();

        context.sum().backward();
        hidden.grad.Should().NotBeNull();
        p["query.weight"].grad!.abs().sum().item<float>().Should().BePositive();
    }

    [Fact]
    public void EvaluationAttentionMatchesTheTrainingPathWithoutDropout()
    {
        using var scope = NewDisposeScope();
        torch.random.manual_seed(5);
        using var attention = new BertSelfAttention(Config with { AttentionProbsDropoutProb = 0 });
        var hidden = randn(2, 5, 32);
        var additive = zeros(2, 1, 1, 5);
        attention.eval();
        var (fused, _) = attention.forward(hidden, additive, outputAttentions: false);
        var (unfused, probabilities) = attention.forward(hidden, additive, outputAttentions: true);
        probabilities.Should().NotBeNull();
        fused.allclose(unfused, rtol: 1e-5, atol: 1e-6).Should().BeTrue();
    }

    [Fact]
    public void AttentionDropoutStartsAtTheCheckpointsAndZeroMakesTrainingAttentionDeterministic()
    {
        using var scope = NewDisposeScope();
        torch.random.manual_seed(6);
        using var model = new BertModel(Config with { HiddenDropoutProb = 0, MaxPositionEmbeddings = 64 });
        model.AttentionDropout.Should().Be(0.2);
        var ids = randint(0, 50, [2, 40]);
        var mask = ones(2, 40, dtype: int64);
        model.eval();
        var reference = model.forward(ids, mask).LastHiddenState;

        model.train();
        model.forward(ids, mask).LastHiddenState.allclose(reference, rtol: 1e-5, atol: 1e-5).Should().BeFalse("attention dropout 0.2 is on in training");
        model.AttentionDropout = 0;
        model.forward(ids, mask).LastHiddenState.allclose(reference, rtol: 1e-5, atol: 1e-5).Should().BeTrue("with no dropout left, training and evaluation agree");

        var act = () => model.AttentionDropout = 1;
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*AttentionDropout*");
    }
}
