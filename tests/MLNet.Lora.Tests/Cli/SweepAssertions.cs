using MLNet.Lora.Sweeps;

namespace MLNet.Lora.Tests.Cli;

internal static class SweepAssertions
{
    /// <summary>Same trials in the same order with the same settings, metrics, sizes, marks and best: everything but the clocks.</summary>
    public static void SameTrials(LoraSweepResult actual, LoraSweepResult expected)
    {
        actual.Trials.Should().HaveCount(expected.Trials.Count);
        foreach (var (a, e) in actual.Trials.Zip(expected.Trials))
        {
            (a.Number, a.Rung, a.Settings, a.Epochs).Should().Be((e.Number, e.Rung, e.Settings, e.Epochs));
            (a.Accuracy, a.MacroAccuracy, a.MacroF1).Should().Be((e.Accuracy, e.MacroAccuracy, e.MacroF1), $"trial #{e.Number} trains the same way in either path");
            a.LogLoss.Should().BeApproximately(e.LogLoss, 1e-6);
            (a.TrainableParameters, a.Error).Should().Be((e.TrainableParameters, e.Error));
            // Same weights, but ML.NET's nested model zips stamp their entries with the save time, which moves the
            // compressed size by a few bytes from one save to the next.
            (a.AdapterFileBytes is null).Should().Be(e.AdapterFileBytes is null);
            if (e.AdapterFileBytes is { } bytes) a.AdapterFileBytes!.Value.Should().BeCloseTo(bytes, 64);
            (a.IsParetoOptimal, a.IsBest, a.Promoted).Should().Be((e.IsParetoOptimal, e.IsBest, e.Promoted), $"trial #{e.Number}'s marks");
            a.TrainingHistory.Select(h => h.TrainingLoss).Should().Equal(e.TrainingHistory.Select(h => h.TrainingLoss));
        }
        actual.ParetoFront.Select(t => t.Number).Should().Equal(expected.ParetoFront.Select(t => t.Number));
        actual.BestTrial.Number.Should().Be(expected.BestTrial.Number);
        (actual.Metric, actual.Strategy).Should().Be((expected.Metric, expected.Strategy));
    }
}
