using MLNet.Lora.Adapters;
using MLNet.Lora.Sweeps;
using MLNet.Lora.Training;

namespace MLNet.Lora.Tests.Sweeps;

public class SearchSpaceTests
{
    [Fact]
    public void PointsAreTheFullProductRanksOutermost()
    {
        var space = new LoraSearchSpace
        {
            Ranks = [1, 4],
            Alphas = [AlphaSetting.Fixed(16), AlphaSetting.TimesRank(2)],
            TargetModuleSets = [LoraTargetModules.Query | LoraTargetModules.Value, LoraTargetModules.All],
            LearningRates = [1e-3, 5e-4],
        };
        var points = space.Points().ToList();
        space.Count.Should().Be(16);
        points.Should().HaveCount(16).And.OnlyHaveUniqueItems();
        points.Take(8).Should().OnlyContain(p => p.Rank == 1);
        points.Where(p => p.AlphaSetting.IsMultipleOfRank && p.Rank == 4).Should().OnlyContain(p => p.Alpha == 8);
        points.Where(p => !p.AlphaSetting.IsMultipleOfRank).Should().OnlyContain(p => p.Alpha == 16);
    }

    [Theory]
    [InlineData("Ranks")]
    [InlineData("LearningRates")]
    [InlineData("TargetModuleSets")]
    public void BadChoicesNameTheProperty(string property)
    {
        var space = property switch
        {
            "Ranks" => new LoraSearchSpace { Ranks = [4, 0] },
            "LearningRates" => new LoraSearchSpace { LearningRates = [double.NaN] },
            _ => new LoraSearchSpace { TargetModuleSets = [LoraTargetModules.None] },
        };
        var act = () => space.Validate();
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*LoraSearchSpace.{property}*");
    }

    [Fact]
    public void SweepOptionsNameTheBadOption()
    {
        var act = () => new LoraSweepOptions { HalvingKeepFraction = 1.5 }.Validate();
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*LoraSweepOptions.HalvingKeepFraction*");
        act = () => new LoraSweepOptions { BaseOptions = new() { Mode = FineTuningMode.Full } }.Validate();
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*BaseOptions.Mode*Lora*");
        act = () => new LoraSweepOptions { BaseOptions = new() { BatchSize = 0 } }.Validate();
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*BatchSize*");
    }

    [Fact]
    public void AlphaSettingsResolveAndRoundTrip()
    {
        AlphaSetting.TimesRank(2).Resolve(8).Should().Be(16);
        AlphaSetting.Fixed(16).Resolve(8).Should().Be(16);
        AlphaSetting.Parse("2r").Should().Be(AlphaSetting.TimesRank(2));
        AlphaSetting.Parse(AlphaSetting.Fixed(32).ToString()).Should().Be(AlphaSetting.Fixed(32));
        var act = () => AlphaSetting.Fixed(0);
        act.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void TrialSettingsRoundTripThroughFlatParametersAndLeaveTheTemplateAlone()
    {
        var settings = new LoraTrialSettings(8, AlphaSetting.TimesRank(2), LoraTargetModules.Query | LoraTargetModules.Value | LoraTargetModules.Intermediate, 5e-4);
        var parameters = settings.ToParameters();
        parameters[LoraTrialSettings.TargetModulesParameter].Should().Be("Query|Value|Intermediate");
        LoraTrialSettings.FromParameters(parameters).Should().Be(settings);

        var template = new LoraTextClassificationTrainer.Options { Rank = 2, MaxEpochs = 7, BatchSize = 5, TextColumnName = "Body" };
        var applied = settings.ApplyTo(template, epochs: 3);
        applied.Should().NotBeSameAs(template);
        (applied.Rank, applied.Alpha, applied.LearningRate, applied.MaxEpochs, applied.BatchSize, applied.TextColumnName)
            .Should().Be((8, 16.0, (double?)5e-4, 3, 5, "Body"));
        (template.Rank, template.MaxEpochs).Should().Be((2, 7));
    }

    [Fact]
    public void SuccessiveHalvingRoundsKeepTheFractionAndGrowTheEpochs()
    {
        LoraSweep.PlanRounds(6, 1, 4, 0.5, 2).Should().Equal(new SweepRound(6, 1), new SweepRound(3, 2), new SweepRound(1, 4));
        LoraSweep.PlanRounds(9, 1, 9, 1.0 / 3, 3).Should().Equal(new SweepRound(9, 1), new SweepRound(3, 3), new SweepRound(1, 9));
        // The ceiling stops the growth: survivors stay at the maximum.
        LoraSweep.PlanRounds(8, 1, 3, 0.5, 2).Should().Equal(new SweepRound(8, 1), new SweepRound(4, 2), new SweepRound(2, 3));
        LoraSweep.PlanRounds(1, 1, 4, 0.5, 2).Should().Equal(new SweepRound(1, 1));
    }
}
