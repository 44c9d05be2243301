using System.CommandLine;
using Microsoft.ML;
using MLNet.Lora.Checkpoints;
using MLNet.Lora.Forgetting;

namespace MLNet.Lora.Cli.Commands;

/// <summary>
/// <c>forgetting</c>: the <see cref="ForgettingEvaluator"/>'s report for a model against its base encoder: what each
/// retention dataset keeps (probe accuracy before and after), drift inside the encoder, and, with <c>--dataset</c> (the
/// fine-tune's own data), gradient conflict and task similarity.
/// </summary>
internal static class ForgettingCommand
{
    public static Command Create(CliConsole console, Option<int?> threads)
    {
        var model = CommonOptions.Model();
        var data = new DataOptionSet(labelRequired: true, datasetRequired: false);
        var retention = new Option<string[]>("--retention")
        {
            Description = "A retention dataset as name=file (same columns as --dataset); repeat for several.",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        retention.Validators.Add(r =>
        {
            foreach (string value in r.GetValueOrDefault<string[]>() ?? [])
                if (value.IndexOf('=') is < 1 || value.EndsWith('='))
                    r.AddError($"--retention takes name=file (for example sst2=sst2.tsv), not '{value}'.");
        });
        var output = CommonOptions.Output("Write the report as JSON here (the text report always goes to the console).", required: false);
        var seed = new Option<int>("--seed") { Description = "Seed of the probes' train/test split.", DefaultValueFactory = _ => 1 };
        var command = new Command("forgetting", "Measure what a fine-tuned model forgot: probe accuracy on retention datasets, drift, conflict.") { model, retention, output, seed };
        data.AddTo(command);
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads, ct =>
        {
            var ml = new MLContext(parse.GetValue(seed));
            using var saved = SavedModel.Load(ml, parse.GetValue(model)!.FullName);
            var columns = data.Columns(parse);
            var tasks = parse.GetValue(retention)!.Select(spec =>
            {
                int split = spec.IndexOf('=');
                var set = data.Read(parse, spec[(split + 1)..]);
                return new ForgettingTask(spec[..split], set.ToDataView(ml), TextColumnName: columns.Text, LabelColumnName: columns.Label!);
            }).ToList();
            ForgettingTask? newTask = parse.GetValue(data.Dataset) is { } file
                ? new ForgettingTask("fine-tune", data.Read(parse, file.FullName).ToDataView(ml), TextColumnName: columns.Text, LabelColumnName: columns.Label!)
                : null;
            console.Note($"Loading the base encoder ({saved.Lora.Settings.BaseEncoder.Source}) to compare against.");
            using var baseEncoder = PretrainedEncoder.Load(saved.Lora.Settings.BaseEncoder.Source);
            var evaluator = new ForgettingEvaluator(ml, new ForgettingEvaluator.Options { Seed = parse.GetValue(seed) });
            var report = evaluator.Evaluate(ComparedModel.FromEncoder(baseEncoder, "base"), ComparedModel.FromTransformer(saved.Lora, "fine-tuned"),
                tasks, newTask, new InlineProgress<ForgettingProgress>(p => console.Note(p.ToString())), ct);
            console.Line(report.ToString());
            if (parse.GetValue(output) is { } path)
            {
                report.SaveJson(path);
                console.Line($"Wrote '{path}'.");
            }
            return Task.FromResult(0);
        }, token));
        return command;
    }
}
