using MLNet.Lora.Cli;

namespace MLNet.Lora.Tests.Cli;

/// <summary>The tool's arguments: accepted in the mlnet CLI's forms, refused with a message that names the option.</summary>
public class CommandLineTests
{
    private static readonly CliConsole Quiet = new(TextWriter.Null, TextWriter.Null, interactive: false);

    private static System.CommandLine.ParseResult Parse(params string[] args) => CliApp.Build(Quiet).Parse(args);

    [Theory]
    [InlineData(new[] { "--has-header" }, true)]
    [InlineData(new[] { "--has-header", "false" }, false)]
    [InlineData(new[] { "--has-header", "true" }, true)]
    [InlineData(new string[0], true)]
    public void HasHeaderTakesTheMlnetForms(string[] header, bool expected)
    {
        var parse = Parse(["train", "--dataset", "a.tsv", "-o", "m.zip", .. header]);
        parse.Errors.Should().BeEmpty();
        var option = parse.CommandResult.Command.Options.Single(o => o.Name == "--has-header");
        parse.GetValue<bool>(option.Name).Should().Be(expected);
    }

    [Theory]
    [InlineData(new[] { "train", "-o", "m.zip" }, "--dataset")]
    [InlineData(new[] { "train", "--dataset", "a.tsv" }, "--output")]
    [InlineData(new[] { "train", "--dataset", "a.tsv", "-o", "m.zip", "--has-header", "maybe" }, "maybe")]
    [InlineData(new[] { "train", "--dataset", "a.tsv", "-o", "m.zip", "--rank", "0" }, "--rank must be a whole number of at least 1 (was '0')")]
    [InlineData(new[] { "train", "--dataset", "a.tsv", "-o", "m.zip", "--epochs", "three" }, "--epochs must be a whole number of at least 1 (was 'three')")]
    [InlineData(new[] { "train", "--dataset", "a.tsv", "-o", "m.zip", "--validation-fraction", "1.5" }, "--validation-fraction must be a number in [0, 1) (was '1.5')")]
    [InlineData(new[] { "train", "--dataset", "a.tsv", "-o", "m.zip", "--validation-fraction", "half" }, "--validation-fraction must be a number in [0, 1) (was 'half')")]
    [InlineData(new[] { "train", "--dataset", "a.tsv", "-o", "m.zip", "--separator", "pipe" }, "--separator takes tab, comma")]
    [InlineData(new[] { "train", "--dataset", "a.tsv", "-o", "m.zip", "--threads", "0" }, "--threads must be a whole number of at least 1 (was '0')")]
    [InlineData(new[] { "predict", "-m", "m.zip", "--dataset", "a.tsv", "-o", "p.tsv", "--shard", "4/4" }, "shard index 4 is outside 0 to 3")]
    [InlineData(new[] { "predict", "-m", "m.zip", "--dataset", "a.tsv", "-o", "p.tsv", "--shard", "two" }, "--shard takes i/n")]
    [InlineData(new[] { "export", "-m", "m.zip", "-o", "x", "--format", "tflite" }, "tflite")]
    [InlineData(new[] { "sweep", "plan", "--dataset", "a.tsv", "-v", "b.tsv", "-o", "p.json", "--ranks", "2,x" }, "--ranks: 'x' is not valid")]
    [InlineData(new[] { "sweep", "plan", "--dataset", "a.tsv", "-v", "b.tsv", "-o", "p.json", "--target-module-sets", "Query|Nose" }, "'Nose' is not a LoRA target module")]
    [InlineData(new[] { "sweep", "run" }, "--plan")]
    [InlineData(new[] { "forgetting", "-m", "m.zip", "--retention", "sst2" }, "--retention takes name=file")]
    public async Task BadArgumentsAreRefusedNamingTheOption(string[] args, string message)
    {
        Parse(args).Errors.Select(e => e.Message).Should().Contain(m => m.Contains(message, StringComparison.Ordinal));
        var (code, _, error) = await CliWorkspace.RunInProcess(args);
        code.Should().Be(CliApp.BadArguments);
        error.Should().Contain(message).And.Contain("--help");
    }

    [Fact]
    public async Task DataErrorsAreOneLineNamingTheFileAndExitOne()
    {
        string folder = Directory.CreateTempSubdirectory("mlnet-lora-cli-args-").FullName;
        try
        {
            var (code, output, error) = await CliWorkspace.RunInProcess("train", "--dataset", Path.Combine(folder, "missing.tsv"), "-o", Path.Combine(folder, "m.zip"));
            code.Should().Be(CliApp.Failed);
            error.Should().Contain($"The data file '{Path.Combine(folder, "missing.tsv")}' does not exist.").And.NotContain("   at ");
            File.Exists(Path.Combine(folder, "m.zip")).Should().BeFalse();

            (code, _, error) = await CliWorkspace.RunInProcess("export", "-m", Path.Combine(folder, "m.zip"), "-o", Path.Combine(folder, "m.onnx"), "--format", "onnx");
            code.Should().Be(CliApp.Failed);
            error.Should().Contain(Path.Combine(folder, "m.zip")).And.NotContain("   at ");
            File.Exists(Path.Combine(folder, "m.onnx")).Should().BeFalse();
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void ShardsComeFromTheOptionOrTheIndexedJobsVariable()
    {
        ShardSpec.Resolve(null, null, "3").Should().Be(ShardSpec.Whole, "without --shards the variable alone does not split the work");
        ShardSpec.Resolve(null, 4, "3").Should().Be(new ShardSpec(3, 4));
        ShardSpec.Resolve(new ShardSpec(1, 4), null, "3").Should().Be(new ShardSpec(1, 4), "--shard wins over the variable");
        var missing = () => ShardSpec.Resolve(null, 4, null);
        missing.Should().Throw<CliException>().WithMessage("*JOB_COMPLETION_INDEX*--shard i/4*");
        var outside = () => ShardSpec.Resolve(null, 4, "4");
        outside.Should().Throw<CliException>().WithMessage("*JOB_COMPLETION_INDEX: shard index 4 is outside 0 to 3*");
        var disagree = () => ShardSpec.Resolve(new ShardSpec(0, 2), 3, null);
        disagree.Should().Throw<CliException>().WithMessage("*disagree*");

        // Contiguous slices that cover every row once, in order, also when the rows do not divide evenly.
        foreach (int total in new[] { 0, 1, 7, 10, 1001 })
            foreach (int n in new[] { 1, 3, 4, 16 })
            {
                var ranges = Enumerable.Range(0, n).Select(i => new ShardSpec(i, n).Range(total)).ToList();
                ranges[0].Start.Should().Be(0);
                ranges[^1].End.Should().Be(total);
                ranges.Zip(ranges.Skip(1)).All(p => p.First.End == p.Second.Start).Should().BeTrue();
                ranges.Should().OnlyContain(r => r.End - r.Start <= (total + n - 1) / n);
            }
    }
}
