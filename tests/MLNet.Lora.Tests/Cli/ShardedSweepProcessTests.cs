using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Lora.Adapters;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Cli.Data;
using MLNet.Lora.Sweeps;

namespace MLNet.Lora.Tests.Cli;

/// <summary>
/// The sharded sweep as a Kubernetes Indexed Job runs it: one process per shard, each with its own
/// <c>JOB_COMPLETION_INDEX</c>, in parallel, then a merge, against the in-process sweep with the same seed.
/// </summary>
public class ShardedSweepProcessTests(CliWorkspace workspace) : IClassFixture<CliWorkspace>
{
    private string[] PlanArgs(string plan, int shards, string ranks, int epochs) =>
    [
        "sweep", "plan", "--dataset", workspace.Train, "--validation-dataset", workspace.Validation, "--base-model", workspace.BaseModel,
        "--ranks", ranks, "--target-module-sets", "Query|Value,All", "--learning-rates", "2e-2", "--epochs", $"{epochs}",
        "--batch-size", "16", "--max-seq-len", "16", "--seed", "42", "--shards", $"{shards}", "-o", plan,
    ];

    private static Dictionary<string, string> Pod(int index) => new() { ["JOB_COMPLETION_INDEX"] = $"{index}", ["MLNET_LORA_THREADS"] = "1" };

    [Fact]
    public async Task ShardsRunAsSeparateProcessesMergeIntoTheInProcessSweep()
    {
        string folder = workspace.NewFolder("sweep");
        string plan = Path.Combine(folder, "plan.json");
        var (code, output, error) = await CliWorkspace.RunInProcess(PlanArgs(plan, shards: 2, ranks: "1,2", epochs: 1));
        code.Should().Be(0, error);
        output.Should().Contain("shard 0: #1 r=1").And.Contain("shard 1: #2 r=1");

        // Both shards at once, as two pods would.
        var pods = Enumerable.Range(0, 2).Select(i => CliWorkspace.Start(Pod(i), "sweep", "run", "--plan", plan)).ToList();
        var finished = await Task.WhenAll(pods.Select(CliWorkspace.Finish));
        foreach (var (exit, podOutput, podError) in finished)
        {
            exit.Should().Be(0, podError);
            podOutput.Should().Contain("2 trials run, 0 already done");
            podError.Should().Contain("torch intra-op threads: 1 (MLNET_LORA_THREADS=1)");
        }
        Directory.GetFiles(Path.Combine(folder, "results"), "trial-*.json").Should().HaveCount(4);

        string merged = Path.Combine(folder, "merged");
        (code, output, error) = await CliWorkspace.RunInProcess("sweep", "merge", "--plan", plan, "-o", merged);
        code.Should().Be(0, error);
        output.Should().Contain("Pareto front:");
        File.Exists(Path.Combine(merged, "sweep.csv")).Should().BeTrue();
        File.ReadAllBytes(Path.Combine(merged, "sweep.png")).Take(4).Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G');

        // The same sweep in this process: same data (read by the same reader), same seed, same base.
        var ml = new MLContext(seed: 1);
        var columns = new TextColumns("Text", "Label");
        var train = TextDataset.Read(workspace.Train, true, columns).ToDataView(ml);
        var validation = TextDataset.Read(workspace.Validation, true, columns).ToDataView(ml);
        var options = new LoraSweepOptions
        {
            SearchSpace = new LoraSearchSpace { Ranks = [1, 2], TargetModuleSets = [LoraTargetModules.Query | LoraTargetModules.Value, LoraTargetModules.All], LearningRates = [2e-2] },
            BaseOptions = new() { BaseModel = EncoderSource.HuggingFaceFolder(workspace.BaseModel), MaxEpochs = 1, BatchSize = 16, MaxSequenceLength = 16, Seed = 42 },
        };
        using var inProcess = new LoraSweep(ml, options).Run(train, validation);
        using var sharded = ShardedSweep.Merge(ml, LoraSweepPlan.Load(plan), Path.Combine(folder, "results"));
        SweepAssertions.SameTrials(sharded, inProcess);

        // The merged best model is the file the best trial's shard saved, and predicts as the in-process best model does.
        var expected = inProcess.BestModel.Transform(validation).GetColumn<float[]>("Score").ToArray();
        var actual = sharded.BestModel.Transform(validation).GetColumn<float[]>("Score").ToArray();
        actual.Zip(expected).Should().OnlyContain(p => p.First.Zip(p.Second).All(v => Math.Abs(v.First - v.Second) < 1e-5));
    }

    [Fact]
    public async Task AKilledShardRerunSkipsItsFinishedTrials()
    {
        string folder = workspace.NewFolder("killed");
        string plan = Path.Combine(folder, "plan.json");
        var (code, _, error) = await CliWorkspace.RunInProcess(PlanArgs(plan, shards: 1, ranks: "1,2,4", epochs: 3));
        code.Should().Be(0, error);
        string results = Path.Combine(folder, "results");
        string first = Path.Combine(results, "trial-0001.json");

        // Kill the pod as soon as its first trial is recorded (a node drained, an OOM kill, a preemption).
        var pod = CliWorkspace.Start(Pod(0), "sweep", "run", "--plan", plan);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!File.Exists(first) && !pod.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2)) await Task.Delay(20);
        bool killed = !pod.HasExited;
        if (killed) pod.Kill(entireProcessTree: true);
        await pod.WaitForExitAsync();
        var done = Directory.GetFiles(results, "trial-*.json").Order().ToList();
        done.Should().Contain(first);
        var before = done.ToDictionary(p => p, File.ReadAllText);

        var (rerunCode, output, rerunError) = await CliWorkspace.Finish(CliWorkspace.Start(Pod(0), "sweep", "run", "--plan", plan));
        rerunCode.Should().Be(0, rerunError);
        output.Should().Contain($"{6 - done.Count} trials run, {done.Count} already done (skipped)");
        foreach (var (path, text) in before) File.ReadAllText(path).Should().Be(text, "a finished trial is not run again");
        Directory.GetFiles(results, "trial-*.json").Should().HaveCount(6, "3 ranks × 2 module sets");
        Directory.GetFiles(results, "trial-*.zip").Should().HaveCount(6, "every result has its model beside it");
        if (killed) done.Count.Should().BeLessThan(6, "the kill came before the shard finished");
    }
}
