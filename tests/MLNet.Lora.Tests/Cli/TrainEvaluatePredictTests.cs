using MLNet.Lora.Cli;

namespace MLNet.Lora.Tests.Cli;

/// <summary>train → evaluate → predict through the tool, on a tiny encoder; predict's shards put together are the whole.</summary>
public class TrainEvaluatePredictTests(CliWorkspace workspace) : IClassFixture<CliWorkspace>
{
    private async Task<string> Train()
    {
        string model = Path.Combine(workspace.NewFolder("train"), "model.zip");
        var (code, output, error) = await CliWorkspace.RunInProcess("train", "--dataset", workspace.Train, "--validation-dataset", workspace.Validation,
            "--base-model", workspace.BaseModel, "--epochs", "2", "--batch-size", "16", "--max-seq-len", "16", "--learning-rate", "2e-2", "--seed", "3", "-o", model);
        code.Should().Be(0, error);
        output.Should().Contain("epoch 2/2").And.Contain("epoch 2: training loss").And.Contain($"Saved '{model}'");
        error.Should().Contain("torch intra-op threads:");
        return model;
    }

    [Fact]
    public async Task TrainsEvaluatesAndPredictsInShardsThatConcatenateToTheWhole()
    {
        string model = await Train();
        var (code, output, error) = await CliWorkspace.RunInProcess("evaluate", "-m", model, "--dataset", workspace.Validation);
        code.Should().Be(0, error);
        output.Should().Contain("micro accuracy").And.Contain("macro-F1").And.Contain("Confusion matrix").And.Contain("positive").And.Contain("negative");
        double accuracy = double.Parse(output.Split('\n').Single(l => l.Contains("micro accuracy")).Split('│', StringSplitOptions.TrimEntries)[2], System.Globalization.CultureInfo.InvariantCulture);
        accuracy.Should().BeInRange(0, 1);

        // Unsharded, then three shards: by --shard and by JOB_COMPLETION_INDEX's resolution.
        string folder = workspace.NewFolder("predict");
        string whole = Path.Combine(folder, "whole.tsv");
        (code, _, error) = await CliWorkspace.RunInProcess("predict", "-m", model, "--dataset", workspace.Validation, "-o", whole);
        code.Should().Be(0, error);
        var lines = File.ReadAllLines(whole);
        lines[0].Should().Be("Label\tText\tPredictedLabel\tProbability.positive\tProbability.negative");
        lines.Should().HaveCount(49);
        var correct = lines.Skip(1).Select(l => l.Split('\t')).Count(f => f[0] == f[2]);
        ((double)correct / 48).Should().BeApproximately(accuracy, 1e-4, "predict and evaluate score alike");
        lines.Skip(1).Should().OnlyContain(l => Math.Abs(l.Split('\t').Skip(3).Sum(p => double.Parse(p, System.Globalization.CultureInfo.InvariantCulture)) - 1) < 1e-5);

        var parts = new List<string[]>();
        for (int i = 0; i < 3; i++)
        {
            string part = Path.Combine(folder, $"part-{i}.tsv");
            (code, _, error) = await CliWorkspace.RunInProcess("predict", "-m", model, "--dataset", workspace.Validation, "-o", part, "--shard", $"{i}/3");
            code.Should().Be(0, error);
            parts.Add(File.ReadAllLines(part));
        }
        parts.Should().OnlyContain(p => p[0] == lines[0], "each shard is a TSV with the header");
        parts.SelectMany(p => p.Skip(1)).Should().Equal(lines.Skip(1), "the shards in order are the unsharded output");
        parts.Select(p => p.Length - 1).Should().Equal(16, 16, 16);

        // The PEFT adapter folder, through the library's exporter.
        string peft = Path.Combine(folder, "peft");
        (code, output, error) = await CliWorkspace.RunInProcess("export", "-m", model, "--format", "peft", "-o", peft);
        code.Should().Be(0, error);
        File.Exists(Path.Combine(peft, "adapter_config.json")).Should().BeTrue();
        File.Exists(Path.Combine(peft, "adapter_model.safetensors")).Should().BeTrue();

        // The forgetting report against the model's own base (found from the model file), on a retention dataset.
        string report = Path.Combine(folder, "forgetting.json");
        (code, output, error) = await CliWorkspace.RunInProcess("forgetting", "-m", model, "--retention", $"topics={workspace.Validation}",
            "--dataset", workspace.Train, "-o", report);
        code.Should().Be(0, error);
        output.Should().Contain("topics");
        var retention = MLNet.Lora.Forgetting.ForgettingReport.LoadJson(report).Retention.Should().ContainSingle().Subject;
        (retention.Task, retention.Reference, retention.Candidate).Should().Be(("topics", "base", "fine-tuned"));
    }

    [Fact]
    public async Task CancellingTrainingLeavesNoModel()
    {
        string model = Path.Combine(workspace.NewFolder("cancel"), "model.zip");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var error = new StringWriter();
        int code = await CliApp.RunAsync(["train", "--dataset", workspace.Train, "--base-model", workspace.BaseModel, "--max-seq-len", "16", "-o", model],
            new CliConsole(TextWriter.Null, error, interactive: false), cancelled.Token);
        code.Should().Be(CliApp.Cancelled);
        error.ToString().Should().Contain("Cancelled; nothing was written.");
        Directory.GetFiles(Path.GetDirectoryName(model)!).Should().BeEmpty("no model, and no temporary file either");
    }

    [Fact]
    public async Task ValidationLabelsTheTrainingDataLacksAreRefused()
    {
        string odd = workspace.WriteTsv("odd.tsv", [new TextRow { Label = "neutral", Text = "the film" }, new TextRow { Label = "positive", Text = "good" }]);
        var (code, _, error) = await CliWorkspace.RunInProcess("train", "--dataset", workspace.Train, "--validation-dataset", odd,
            "--base-model", workspace.BaseModel, "-o", Path.Combine(workspace.NewFolder("odd"), "m.zip"));
        code.Should().Be(CliApp.Failed);
        error.Should().Contain("has labels the training data does not: 'neutral' (line 2)");
    }
}
