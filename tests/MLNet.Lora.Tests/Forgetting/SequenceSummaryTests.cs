using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Tests.Forgetting;

public class SequenceSummaryTests
{
    private static readonly string[] TwoTasks = ["sst2", "ag_news"];

    /// <summary>n rows, the first <paramref name="correct"/> of them correct.</summary>
    private static bool[] Rows(int n, int correct) => Enumerable.Range(0, n).Select(k => k < correct).ToArray();

    /// <summary>n rows, each correct with probability p.</summary>
    private static bool[] RandomRows(Random random, int n, double p) => Enumerable.Range(0, n).Select(_ => random.NextDouble() < p).ToArray();

    private static double Fraction(bool[] rows) => (double)rows.Count(c => c) / rows.Length;

    /// <summary>A run whose accuracies are the fractions of its per-row results, as the sequence runner records them.</summary>
    private static SequenceResult Run(string method, int seed, string[] tasks, bool[][][] rowCorrect, bool[][] baselineRows, double seconds = 10) => new()
    {
        Method = method, Seed = seed, Tasks = tasks,
        Accuracy = rowCorrect.Select(row => row.Select(Fraction).ToArray()).ToArray(),
        Baseline = baselineRows.Select(Fraction).ToArray(),
        RowCorrect = rowCorrect, BaselineRowCorrect = baselineRows,
        Steps = [], Sharpness = [], GradientConflicts = [], Drift = [], TrainedParameters = new long[tasks.Length], TrainingSeconds = seconds,
    };

    /// <summary>Two tasks of n rows each, with R = [[a00, a01], [a10, a11]] and b = [b0, b1] (accuracies in rows out of n).</summary>
    private static SequenceResult TwoTaskRun(string method, int seed, int n, int a00, int a01, int a10, int a11, int b0, int b1, double seconds = 10) =>
        Run(method, seed, TwoTasks, [[Rows(n, a00), Rows(n, a01)], [Rows(n, a10), Rows(n, a11)]], [Rows(n, b0), Rows(n, b1)], seconds);

    private static SequenceResult RandomRun(string method, int seed, int tasks, int n)
    {
        var random = new Random(seed);
        var names = Enumerable.Range(0, tasks).Select(j => $"task{j}").ToArray();
        var rows = Enumerable.Range(0, tasks).Select(i => Enumerable.Range(0, tasks).Select(j => RandomRows(random, n, j <= i ? 0.9 - 0.1 * (i - j) : 0.4)).ToArray()).ToArray();
        var baseline = Enumerable.Range(0, tasks).Select(_ => RandomRows(random, n, 0.35)).ToArray();
        return Run(method, seed, names, rows, baseline, seconds: 100 + 10 * seed);
    }

    private static void Contains(MetricInterval interval)
    {
        interval.Lower.Should().BeLessThanOrEqualTo(interval.Mean);
        interval.Upper.Should().BeGreaterThanOrEqualTo(interval.Mean);
    }

    [Fact]
    public void NewTaskAccuracyIsTheMeanOfTheDiagonal()
    {
        var m = new AccuracyMatrix([[0.70, 0.10, 0.20], [0.90, 0.80, 0.30], [0.60, 0.75, 0.85]]);
        m.NewTaskAccuracy.Should().BeApproximately((0.70 + 0.80 + 0.85) / 3, 1e-12);
    }

    [Fact]
    public void MeansAreTheAccuracyMatrixFiguresAveragedOverRuns()
    {
        // Seed 1: R = [[0.8, 0.3], [0.6, 0.9]], b = [0.5, 0.2]; seed 2: R = [[0.9, 0.4], [0.5, 0.7]], b = [0.5, 0.1].
        var one = TwoTaskRun("shared LoRA", 1, 10, 8, 3, 6, 9, 5, 2, seconds: 10);
        var two = TwoTaskRun("shared LoRA", 2, 10, 9, 4, 5, 7, 5, 1, seconds: 20);
        var s = SequenceSummary.Summarize([one, two], resamples: 200).Single();

        s.Method.Should().Be("shared LoRA");
        s.Tasks.Should().Equal(TwoTasks);
        s.Runs.Should().Be(2);
        s.AverageAccuracy.Mean.Should().BeApproximately(((0.6 + 0.9) / 2 + (0.5 + 0.7) / 2) / 2, 1e-12);     // 0.675
        s.AverageForgetting.Mean.Should().BeApproximately(((0.8 - 0.6) + (0.9 - 0.5)) / 2, 1e-12);          // 0.3
        s.BackwardTransfer.Mean.Should().BeApproximately(((0.6 - 0.8) + (0.5 - 0.9)) / 2, 1e-12);           // −0.3
        s.ForwardTransfer.Mean.Should().BeApproximately(((0.3 - 0.2) + (0.4 - 0.1)) / 2, 1e-12);            // 0.2
        s.NewTaskAccuracy.Mean.Should().BeApproximately(((0.8 + 0.9) / 2 + (0.9 + 0.7) / 2) / 2, 1e-12);    // 0.825
        s.TrainingSeconds.Mean.Should().BeApproximately(15, 1e-12);

        var m = one.ToAccuracyMatrix();
        var single = SequenceSummary.Summarize([one], resamples: 200).Single();
        single.AverageAccuracy.Mean.Should().Be(m.AverageAccuracy);
        single.AverageForgetting.Mean.Should().Be(m.AverageForgetting(ForgettingConvention.Max));
        single.BackwardTransfer.Mean.Should().Be(m.BackwardTransfer);
        single.ForwardTransfer.Mean.Should().Be(m.ForwardTransfer);
        single.NewTaskAccuracy.Mean.Should().Be(m.NewTaskAccuracy);
    }

    [Fact]
    public void AllRowsCorrectGivesZeroWidthIntervals()
    {
        var perfect = Run("full", 1, TwoTasks, [[Rows(50, 50), Rows(40, 40)], [Rows(50, 50), Rows(40, 40)]], [Rows(50, 50), Rows(30, 30)], seconds: 7);
        var s = SequenceSummary.Summarize([perfect, perfect with { Seed = 2 }]).Single();

        s.AverageAccuracy.Should().Be(new MetricInterval(1, 1, 1));
        s.NewTaskAccuracy.Should().Be(new MetricInterval(1, 1, 1));
        s.AverageForgetting.Should().Be(new MetricInterval(0, 0, 0));
        s.BackwardTransfer.Should().Be(new MetricInterval(0, 0, 0));
        s.ForwardTransfer.Should().Be(new MetricInterval(0, 0, 0));
        s.TrainingSeconds.Should().Be(new MetricInterval(7, 7, 7));
    }

    [Fact]
    public void IntervalsContainTheMean()
    {
        var runs = Enumerable.Range(1, 3).Select(seed => RandomRun("LoRA per task", seed, 3, 300)).ToList();
        var s = SequenceSummary.Summarize(runs).Single();
        foreach (var interval in new[] { s.AverageAccuracy, s.AverageForgetting, s.BackwardTransfer, s.ForwardTransfer, s.NewTaskAccuracy, s.TrainingSeconds })
        {
            Contains(interval);
            (interval.Upper - interval.Lower).Should().BePositive();
        }
    }

    [Fact]
    public void OneRunsAccuracyIntervalHasTheBinomialWidth()
    {
        // ACC = mean of two independent accuracies of n rows at p = 0.5: standard error sqrt(2 · 0.25 / n) / 2,
        // so the 95 % interval is about 2 · 1.96 · that wide: 0.0438 for n = 1000, 0.1386 for n = 100.
        static double Width(int n)
        {
            var s = SequenceSummary.Summarize([TwoTaskRun("full", 1, n, n / 2, n / 2, n / 2, n / 2, n / 2, n / 2)], resamples: 4000).Single();
            return s.AverageAccuracy.Upper - s.AverageAccuracy.Lower;
        }

        double wide = Width(100), narrow = Width(1000);
        narrow.Should().BeApproximately(2 * 1.96 * Math.Sqrt(2 * 0.25 / 1000) / 2, 0.006);
        wide.Should().BeApproximately(2 * 1.96 * Math.Sqrt(2 * 0.25 / 100) / 2, 0.02);
        wide.Should().BeGreaterThan(2 * narrow);
    }

    [Fact]
    public void SeedsThatDisagreeGiveAnIntervalSpanningBoth()
    {
        // Rows all-or-nothing: resampling rows changes nothing, so the spread comes from the seeds alone.
        // Seed 1 forgets task 0 entirely (1 → 0), seed 2 not at all; two runs drawn with replacement give 0, 0.5 or 1.
        var forgets = TwoTaskRun("shared LoRA", 1, 20, 20, 0, 0, 20, 0, 0, seconds: 10);
        var keeps = TwoTaskRun("shared LoRA", 2, 20, 20, 0, 20, 20, 0, 0, seconds: 30);
        var s = SequenceSummary.Summarize([forgets, keeps]).Single();

        s.AverageForgetting.Should().Be(new MetricInterval(0.5, 0, 1));
        s.BackwardTransfer.Should().Be(new MetricInterval(-0.5, -1, 0));
        s.TrainingSeconds.Should().Be(new MetricInterval(20, 10, 30));
        s.NewTaskAccuracy.Should().Be(new MetricInterval(1, 1, 1));
    }

    [Fact]
    public void SameSeedSameResultOtherSeedOtherResamples()
    {
        var runs = Enumerable.Range(1, 3).Select(seed => RandomRun("rehearsal", seed, 3, 200)).ToList();
        var a = SequenceSummary.Summarize(runs, resamples: 500, seed: 5).Single();
        var b = SequenceSummary.Summarize(runs, resamples: 500, seed: 5).Single();
        var c = SequenceSummary.Summarize(runs, resamples: 500, seed: 6).Single();

        b.Should().BeEquivalentTo(a);
        c.AverageAccuracy.Mean.Should().Be(a.AverageAccuracy.Mean);
        c.AverageAccuracy.Should().NotBe(a.AverageAccuracy);

        // Another method summarized first leaves this one's intervals unchanged.
        var withOther = SequenceSummary.Summarize([RandomRun("EWC", 9, 3, 200), .. runs], resamples: 500, seed: 5);
        withOther[1].Should().BeEquivalentTo(a);
    }

    [Fact]
    public void GroupsByMethodInOrderOfFirstAppearance()
    {
        var summaries = SequenceSummary.Summarize(
        [
            TwoTaskRun("O-LoRA", 1, 10, 8, 3, 6, 9, 5, 2),
            TwoTaskRun("EWC", 1, 10, 8, 3, 7, 9, 5, 2),
            TwoTaskRun("O-LoRA", 2, 10, 8, 3, 6, 9, 5, 2),
        ], resamples: 100);

        summaries.Select(s => s.Method).Should().Equal("O-LoRA", "EWC");
        summaries.Select(s => s.Runs).Should().Equal(2, 1);
        summaries[1].AverageForgetting.Mean.Should().BeApproximately(0.1, 1e-12);
    }

    [Fact]
    public void BaselineWithItsOwnRowsIsResampledApart()
    {
        // b[1] has 5 rows against 8 test rows in column 1: it is drawn independently and still bounds FWT's interval.
        var run = Run("merged", 1, TwoTasks, [[Rows(8, 6), Rows(8, 4)], [Rows(8, 5), Rows(8, 7)]], [Rows(8, 4), Rows(5, 1)]);
        var s = SequenceSummary.Summarize([run]).Single();
        s.ForwardTransfer.Mean.Should().BeApproximately(0.5 - 0.2, 1e-12);
        Contains(s.ForwardTransfer);
        s.ForwardTransfer.Upper.Should().BeGreaterThan(s.ForwardTransfer.Lower);
    }

    [Fact]
    public void RefusesRunsItCannotSummarize()
    {
        var good = TwoTaskRun("L2-SP", 1, 10, 8, 3, 6, 9, 5, 2);

        FluentActions.Invoking(() => SequenceSummary.Summarize([good, good with { Seed = 2, Tasks = ["sst2", "emotion"] }]))
            .Should().Throw<ArgumentException>().WithMessage("*'L2-SP'*different task lists*emotion*");
        FluentActions.Invoking(() => SequenceSummary.Summarize([good with { RowCorrect = null }]))
            .Should().Throw<ArgumentException>().WithMessage("*'L2-SP'*saved before per-row results were recorded*");
        FluentActions.Invoking(() => SequenceSummary.Summarize([good with { BaselineRowCorrect = null }]))
            .Should().Throw<ArgumentException>().WithMessage("*'L2-SP'*saved before per-row results were recorded*");
        FluentActions.Invoking(() => SequenceSummary.Summarize([good with { Accuracy = [[0.8, 0.3], [0.6, 0.95]] }]))
            .Should().Throw<ArgumentException>().WithMessage("*R[1][1]*0.9*0.95*");
        FluentActions.Invoking(() => SequenceSummary.Summarize([good with { RowCorrect = [[Rows(10, 8), Rows(10, 3)], [Rows(10, 6), Rows(9, 9)]] }]))
            .Should().Throw<ArgumentException>().WithMessage("*9 rows in cell R[1][1]*same test rows*");
        FluentActions.Invoking(() => SequenceSummary.Summarize([Run("one", 1, ["sst2"], [[Rows(4, 3)]], [Rows(4, 2)])]))
            .Should().Throw<ArgumentException>().WithMessage("*'one'*at least two*");
        FluentActions.Invoking(() => SequenceSummary.Summarize([])).Should().Throw<ArgumentException>().WithMessage("*no runs*");
        FluentActions.Invoking(() => SequenceSummary.Summarize([good], resamples: 0)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void MarkdownTableShowsPointsAndSeconds()
    {
        var interval = new MetricInterval(0.7041, 0.6812, 0.7254);
        interval.ToString().Should().Be("0.704 [0.681, 0.725]");
        var summary = new SequenceSummary
        {
            Method = "rehearsal 10 %", Tasks = TwoTasks, Runs = 3,
            AverageAccuracy = interval,
            AverageForgetting = new MetricInterval(0.021, -0.004, 0.046),
            BackwardTransfer = new MetricInterval(-0.021, -0.046, 0.004),
            ForwardTransfer = new MetricInterval(0.1, 0.05, 0.15),
            NewTaskAccuracy = new MetricInterval(0.9, 0.88, 0.92),
            TrainingSeconds = new MetricInterval(123.4, 100.2, 150.6),
        };

        SequenceSummary.ToMarkdownTable([summary]).Should().Be(
            "| method | ACC | forgetting | BWT | FWT | new-task acc | training time (s) |" + Environment.NewLine +
            "|---|---:|---:|---:|---:|---:|---:|" + Environment.NewLine +
            "| rehearsal 10 % | 70.4 [68.1, 72.5] | 2.1 [-0.4, 4.6] | -2.1 [-4.6, 0.4] | 10.0 [5.0, 15.0] | 90.0 [88.0, 92.0] | 123 [100, 151] |" + Environment.NewLine);
    }

    [Fact]
    public void AMethodComparedWithACopyOfItselfDiffersByExactlyZero()
    {
        var runs = new[] { RandomRun("shared LoRA", 1, 3, 50), RandomRun("shared LoRA", 2, 3, 50) };
        var copies = runs.Select(r => r with { Method = "copy" });
        var d = SequenceSummary.Compare([.. runs, .. copies], "shared LoRA", resamples: 300).Single();

        d.Method.Should().Be("copy");
        d.RelativeTo.Should().Be("shared LoRA");
        d.Runs.Should().Be(2);
        foreach (var figure in new[] { d.AverageAccuracy, d.AverageForgetting, d.BackwardTransfer, d.ForwardTransfer, d.NewTaskAccuracy, d.TrainingSeconds })
            figure.Should().Be(new MetricInterval(0, 0, 0));
    }

    [Fact]
    public void PairingSeparatesADifferenceThatSeedToSeedVariationHides()
    {
        // Both methods learn task 0 to 90 % and task 1 to 80 % on the same rows. After task 1, "shared" keeps 80 (seed 1)
        // or 40 (seed 2) of task 0's rows and "rehearsal" the same rows plus 5 more: rehearsal forgets exactly 5 points
        // less on every seed, while the seeds differ by 40.
        const int n = 100;
        SequenceResult Method(string name, int seed, int kept) => TwoTaskRun(name, seed, n, 90, 30, kept, 80, 50, 20, seconds: 10 * seed);
        SequenceResult[] runs = [Method("shared", 1, 80), Method("shared", 2, 40), Method("rehearsal", 1, 85), Method("rehearsal", 2, 45)];

        var own = SequenceSummary.Summarize(runs, resamples: 1000);
        var (shared, rehearsal) = (own[0].AverageForgetting, own[1].AverageForgetting);
        rehearsal.Upper.Should().BeGreaterThan(shared.Lower, "apart, the two methods' intervals overlap");

        var d = SequenceSummary.Compare(runs, "shared", resamples: 1000).Single();
        d.AverageForgetting.Mean.Should().BeApproximately(-0.05, 1e-12);
        d.AverageForgetting.Upper.Should().BeLessThan(0, "paired, every resample draws the same rows for both");
        d.AverageForgetting.Lower.Should().BeGreaterThan(-0.15);
        d.AverageAccuracy.Mean.Should().BeApproximately(0.025, 1e-12);
        d.AverageAccuracy.Lower.Should().BeGreaterThan(0);
        d.NewTaskAccuracy.Should().Be(new MetricInterval(0, 0, 0));
        d.ForwardTransfer.Should().Be(new MetricInterval(0, 0, 0));
        d.TrainingSeconds.Should().Be(new MetricInterval(0, 0, 0));
    }

    [Fact]
    public void CompareRefusesRunsThatCannotBePaired()
    {
        var a1 = TwoTaskRun("a", 1, 10, 8, 3, 6, 9, 5, 2);
        var a2 = a1 with { Seed = 2 };
        var b1 = a1 with { Method = "b" };
        var b2 = a2 with { Method = "b" };

        FluentActions.Invoking(() => SequenceSummary.Compare([a1, b1], "c"))
            .Should().Throw<ArgumentException>().WithMessage("*no runs of the reference method 'c'*'a', 'b'*");
        FluentActions.Invoking(() => SequenceSummary.Compare([a1, a2, b1], "a"))
            .Should().Throw<ArgumentException>().WithMessage("*'b' has runs for seeds [1]*'a' for [1, 2]*same seeds*");
        FluentActions.Invoking(() => SequenceSummary.Compare([a1, b1, b1], "a"))
            .Should().Throw<ArgumentException>().WithMessage("*'b' has runs for seeds [1, 1]*one run per seed*");
        FluentActions.Invoking(() => SequenceSummary.Compare([a1, a1, b1, b2], "a"))
            .Should().Throw<ArgumentException>().WithMessage("*one run per seed*");
        FluentActions.Invoking(() => SequenceSummary.Compare([a1, TwoTaskRun("b", 1, 12, 8, 3, 6, 9, 5, 2)], "a"))
            .Should().Throw<ArgumentException>().WithMessage("*'b' and 'a'*different numbers of rows*");
        FluentActions.Invoking(() => SequenceSummary.Compare([a1, b1 with { Tasks = ["sst2", "emotion"] }], "a"))
            .Should().Throw<ArgumentException>().WithMessage("*'b' and 'a'*different task lists*");
        FluentActions.Invoking(() => SequenceSummary.Compare([a1, b1], null!)).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void MarkdownTableOfDifferencesNamesItsReference()
    {
        var runs = new[] { TwoTaskRun("shared", 1, 10, 8, 3, 6, 9, 5, 2, seconds: 10), TwoTaskRun("EWC", 1, 10, 8, 3, 8, 9, 5, 2, seconds: 25) };
        var d = SequenceSummary.Compare(runs, "shared", resamples: 200);

        var lines = SequenceSummary.ToMarkdownTable(d).Split(Environment.NewLine);
        lines[0].Should().Be("| method − shared | Δ ACC | Δ forgetting | Δ BWT | Δ FWT | Δ new-task acc | Δ training time (s) |");
        lines[2].Should().StartWith("| EWC | 10.0 [").And.Contain("| -20.0 [").And.EndWith("| 15 [15, 15] |");
        FluentActions.Invoking(() => SequenceSummary.ToMarkdownTable([.. d, .. SequenceSummary.Summarize(runs)]))
            .Should().Throw<ArgumentException>().WithMessage("*mix figures relative to*'shared'*none*");
    }
}
