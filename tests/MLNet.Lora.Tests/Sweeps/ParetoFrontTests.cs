using MLNet.Lora.Adapters;
using MLNet.Lora.Sweeps;

namespace MLNet.Lora.Tests.Sweeps;

public class ParetoFrontTests
{
    internal static LoraSweepTrial Trial(int number, double accuracy, long parameters, double? forgetting = null, string? error = null) => new()
    {
        Number = number,
        Settings = new LoraTrialSettings(number, AlphaSetting.TimesRank(2), LoraTargetModules.Query | LoraTargetModules.Value, 1e-3),
        Epochs = 1,
        Accuracy = error is null ? accuracy : double.NaN,
        MacroF1 = error is null ? accuracy - 0.01 : double.NaN,
        TrainableParameters = parameters,
        Forgetting = forgetting,
        Error = error,
    };

    [Fact]
    public void KeepsTheTrialsThatNoOtherBeatsOnAccuracyAndSize()
    {
        LoraSweepTrial[] trials =
        [
            Trial(1, 0.80, 1_000),   // smallest: front
            Trial(2, 0.85, 2_000),   // front
            Trial(3, 0.84, 4_000),   // beaten by 2 (more accurate and smaller)
            Trial(4, 0.90, 8_000),   // most accurate: front
            Trial(5, 0.90, 16_000),  // as accurate as 4 but larger: beaten
            Trial(6, 0.80, 1_000),   // ties 1 exactly: neither dominates, both on the front
            Trial(7, 0.99, 500, error: "diverged"),   // failed: never on the front
        ];
        ParetoFront.Mark(trials).Should().Equal(true, true, false, true, false, true, false);
        ParetoFront.Of(trials).Select(t => t.Number).Should().Equal(1, 2, 4, 6);
    }

    [Fact]
    public void ForgettingIsAThirdObjectiveWhenEveryTrialHasIt()
    {
        LoraSweepTrial[] trials =
        [
            Trial(1, 0.80, 1_000, forgetting: 0.05),
            Trial(2, 0.85, 2_000, forgetting: 0.01),
            Trial(3, 0.84, 4_000, forgetting: 0.00),   // beaten on accuracy and size, but forgets least: front
            Trial(4, 0.84, 4_000, forgetting: 0.02),   // beaten by 2 on all three
        ];
        ParetoFront.Mark(trials).Should().Equal(true, true, true, false);
        // Without forgetting on every trial, it is left out of the comparison.
        ParetoFront.Mark([trials[0], trials[1], trials[2] with { Forgetting = null }]).Should().Equal(true, true, false);
    }

    [Fact]
    public void TheMetricChoosesTheAxis()
    {
        LoraSweepTrial[] trials = [Trial(1, 0.80, 1_000) with { MacroF1 = 0.9 }, Trial(2, 0.85, 2_000) with { MacroF1 = 0.7 }];
        ParetoFront.Mark(trials, SweepMetric.Accuracy).Should().Equal(true, true);
        ParetoFront.Mark(trials, SweepMetric.MacroF1).Should().Equal(true, false);
    }

    [Fact]
    public void MacroF1AveragesPerClassF1FromTheConfusionMatrix()
    {
        // Rows actual, columns predicted. Class 0: TP 8, FN 2, FP 1 → F1 16/19. Class 1: TP 5, FN 1, FP 1 → 10/12.
        // Class 2: TP 0, FN 0, FP 1 → 0 (predicted but never right). Class 3: absent and never predicted → left out.
        double[][] counts = [[8, 1, 1, 0], [1, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
        ClassificationScores.MacroF1(counts).Should().BeApproximately((16.0 / 19 + 10.0 / 12 + 0) / 3, 1e-12);
        ClassificationScores.MacroF1([[5.0, 0], [0, 5.0]]).Should().Be(1);
    }
}
