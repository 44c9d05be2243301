using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Tests.Forgetting;

public class ForgettingTimelineTests
{
    private static TimelinePoint Point(int epoch, double drop, double repr, double attn, double? eig) => new()
    {
        Epoch = epoch,
        FrozenProbeAccuracy = new Dictionary<string, double>(),
        RefitProbeAccuracy = new Dictionary<string, double>(),
        RetentionDrop = drop,
        RepresentationDrift = [repr],
        MaxRepresentationDrift = repr,
        AttentionDriftPerLayer = [attn],
        MaxAttentionDrift = attn,
        TopHessianEigenvalue = eig,
    };

    private static ForgettingTimeline Timeline(params TimelinePoint[] points) =>
        new() { Label = "t", RetentionTasks = ["a"], Points = points, Thresholds = new TimelineThresholds() };

    [Fact]
    public void OnsetsAreTheFirstEpochsAtOrAboveEachThreshold()
    {
        // Default thresholds: retention 0.05, representation 0.05, attention 0.02, sharpness 25 % change.
        var t = Timeline(
            Point(0, 0.00, 0.00, 0.00, 8.0),
            Point(1, 0.03, 0.05, 0.01, 7.0),    // representation reaches its threshold exactly
            Point(2, 0.05, 0.09, 0.03, 5.0),    // retention and attention cross; eigenvalue 37.5 % lower: flatter
            Point(3, 0.04, 0.12, 0.04, 4.0));
        var onsets = t.Onsets.ToDictionary(o => o.Signal);
        onsets["retention"].FirstEpoch.Should().Be(2);
        onsets["representation"].FirstEpoch.Should().Be(1);
        onsets["attention"].FirstEpoch.Should().Be(2);
        onsets["sharpness"].FirstEpoch.Should().Be(2);
        onsets["sharpness"].Direction.Should().Be("flatter");
        t.Verdict.Should().Be("inside-first");
        t.CascadeOrder.Should().Be("representation (epoch 1) → attention = sharpness (epoch 2)");
    }

    [Fact]
    public void VerdictCoversEveryCase()
    {
        Timeline(Point(0, 0, 0, 0, null), Point(1, 0, 0, 0, null)).Verdict.Should().Be("none");
        Timeline(Point(0, 0, 0, 0, null), Point(1, 0, 0.2, 0, null)).Verdict.Should().Be("inside-only");
        Timeline(Point(0, 0, 0, 0, null), Point(1, 0.1, 0, 0, null)).Verdict.Should().Be("outside-only");
        Timeline(Point(0, 0, 0, 0, null), Point(1, 0.1, 0.2, 0, null)).Verdict.Should().Be("same-epoch");
        Timeline(Point(0, 0, 0, 0, null), Point(1, 0.1, 0, 0, null), Point(2, 0.1, 0.2, 0, null)).Verdict.Should().Be("outside-first");
        Timeline(Point(0, 0, 0, 0, 2.0), Point(1, 0, 0, 0, 3.0)).Onsets.Single(o => o.Signal == "sharpness").Direction.Should().Be("sharper");
        Timeline(Point(0, 0, 0, 0, null), Point(1, 0, 0, 0, null)).CascadeOrder.Should().Be("attention = representation = sharpness (never)");
    }
}
