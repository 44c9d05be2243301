using MLNet.Lora.Encoders;
using MLNet.Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNet.Lora.Tests.Training;

public class RehearsalAndBudgetTests
{
    [Fact]
    public void RehearsalReplaysEveryOldRowBeforeRepeatingTheTasksTakingTurns()
    {
        var tokenizer = TinyEncoders.Tokenizer();
        LabeledTexts Rows(int n) => LabeledTexts.Encode(tokenizer, Enumerable.Repeat<string?>("good film", n).ToList(), Enumerable.Repeat(0, n).ToList(), 8);
        using var headA = nn.Linear(4, 2);
        using var headB = nn.Linear(4, 3);
        var rows = new RehearsalRows([new RehearsalTask("a", Rows(5), headA), new RehearsalTask("b", Rows(3), headB)], ratio: 0.25, seed: 1);
        rows.CountFor(16).Should().Be(4);
        rows.CountFor(1).Should().Be(1, "every batch replays at least one old row");

        var drawn = rows.Draw(16);
        drawn.Select(d => d.Task).Should().Equal(Enumerable.Range(0, 16).Select(k => k % 2));
        drawn.Where(d => d.Task == 0).Take(5).Select(d => d.Row).Should().BeEquivalentTo([0, 1, 2, 3, 4], "task a's five rows all come once before any repeats");
        drawn.Where(d => d.Task == 1).Take(3).Select(d => d.Row).Should().BeEquivalentTo([0, 1, 2]);

        var again = new RehearsalRows([new RehearsalTask("a", Rows(5), headA), new RehearsalTask("b", Rows(3), headB)], 0.25, seed: 1).Draw(16);
        again.Should().Equal(drawn, "the same seed replays the same rows");
    }

    [Fact]
    public void ReplayedRowsReachTheLossThroughTheirOwnHead()
    {
        torch.set_num_threads(1);
        using var encoder = TinyEncoders.Create();
        var tokenizer = encoder.Tokenizer;
        var rows = SyntheticData.Sentiment(64, seed: 1);
        var train = LabeledTexts.Encode(tokenizer, rows.Select(r => (string?)r.Text).ToList(), rows.Select(r => r.Label == "positive" ? 1 : 0).ToList(), 16);
        var old = SyntheticData.Topics(30, seed: 2);
        var oldTopics = old.Select(r => r.Label).Distinct().Order().ToList();
        var oldRows = LabeledTexts.Encode(tokenizer, old.Select(r => (string?)r.Text).ToList(), old.Select(r => oldTopics.IndexOf(r.Label)).ToList(), 16);

        float[] HeadAfterTraining(double? ratio)
        {
            torch.random.manual_seed(3);
            using var oldHead = nn.Linear(encoder.Model.Config.HiddenSize, oldTopics.Count);
            var before = oldHead.weight!.detach().clone();
            var model = new TextClassificationModel(encoder.Model.Clone(), 2, PoolingStrategy.Mean);
            FineTuningLoop.PrepareParameters(model, FineTuningMode.Full);
            using var controls = ratio is { } r ? new RetentionControls { Rehearsal = new RehearsalRows([new RehearsalTask("topics", oldRows, oldHead)], r, seed: 1) } : null;
            var settings = new FineTuningSettings { Mode = FineTuningMode.Full, MaxEpochs = 1, BatchSize = 16, LearningRate = 1e-2, Seed = 1, MaxSequenceLength = 16 };
            new FineTuningLoop(model, tokenizer, settings, CPU, controls: controls).Run(train);
            var moved = oldHead.weight!.detach().sub(before).abs().max().item<float>();
            model.Dispose();
            return [moved];
        }

        HeadAfterTraining(null)[0].Should().Be(0, "without rehearsal the old head is not part of the fit");
        HeadAfterTraining(0.5)[0].Should().BeGreaterThan(1e-4f, "replayed rows' loss is read out by the old task's head, which trains along");
    }

    /// <summary>A retention check that returns the drops it was given, one per call.</summary>
    private sealed class ScriptedCheck(params double[] drops) : IRetentionCheck
    {
        private int next;

        public int Calls => next;

        public double Drop(TextClassificationModel model) => drops[next++];
    }

    private static (TextClassificationModel Model, LabeledTexts Train, FineTuningSettings Settings) Fixture(MLNet.Lora.Checkpoints.PretrainedEncoder encoder, int epochs)
    {
        var rows = SyntheticData.Sentiment(32, seed: 1);
        var train = LabeledTexts.Encode(encoder.Tokenizer, rows.Select(r => (string?)r.Text).ToList(), rows.Select(r => r.Label == "positive" ? 1 : 0).ToList(), 16);
        torch.random.manual_seed(1);
        var model = new TextClassificationModel(encoder.Model.Clone(), 2, PoolingStrategy.Mean);
        FineTuningLoop.PrepareParameters(model, FineTuningMode.Full);
        return (model, train, new FineTuningSettings { Mode = FineTuningMode.Full, MaxEpochs = epochs, BatchSize = 8, LearningRate = 1e-2, Seed = 1, MaxSequenceLength = 16 });
    }

    [Fact]
    public void TheBudgetStopsAtTheEpochTheCheckSaysAndKeepsTheLastOneWithinBudget()
    {
        torch.set_num_threads(1);
        using var encoder = TinyEncoders.Create();
        var (model, train, settings) = Fixture(encoder, epochs: 5);
        using var _ = model;
        var check = new ScriptedCheck(0.01, 0.02, 0.10, 0, 0);
        using var controls = new RetentionControls { Budget = (new ForgettingBudget(0.05), check) };
        var heads = new List<Tensor>();
        var loop = new FineTuningLoop(model, encoder.Tokenizer, settings, CPU, controls: controls);
        var history = loop.Run(train, onEpochEnded: c => heads.Add(c.Model.Classifier.weight!.detach().clone()));

        check.Calls.Should().Be(3, "epoch 3 went over budget, so epochs 4 and 5 never ran");
        history.Should().HaveCount(3);
        var outcome = loop.BudgetOutcome!;
        outcome.StoppedEarly.Should().BeTrue();
        outcome.KeptStep.Should().Be(8, "four steps per epoch; epoch 2 was the last within budget");
        outcome.Checks.Select(c => (c.Epoch, c.Step, c.WithinBudget)).Should().Equal((0, 0, true), (1, 4, true), (2, 8, true), (3, 12, false));
        model.Classifier.weight!.Identical(heads[1]).Should().BeTrue("the weights of epoch 2 are restored");
        heads[2].Identical(heads[1]).Should().BeFalse();
    }

    [Fact]
    public void StepChecksStopMidEpochAndAnOverBudgetFirstCheckKeepsTheStart()
    {
        torch.set_num_threads(1);
        using var encoder = TinyEncoders.Create();
        var (model, train, settings) = Fixture(encoder, epochs: 2);
        using var _ = model;
        var start = model.Classifier.weight!.detach().clone();
        var check = new ScriptedCheck(0.3);
        using var controls = new RetentionControls { Budget = (new ForgettingBudget(0.05) { EveryNSteps = 2 }, check) };
        var loop = new FineTuningLoop(model, encoder.Tokenizer, settings, CPU, controls: controls);
        loop.Run(train);

        loop.BudgetOutcome!.Checks.Select(c => (c.Epoch, c.Step)).Should().Equal((0, 0), (1, 2));
        loop.BudgetOutcome.KeptStep.Should().Be(0);
        model.Classifier.weight!.Identical(start).Should().BeTrue("no step stayed within budget, so the start is kept");
    }
}
