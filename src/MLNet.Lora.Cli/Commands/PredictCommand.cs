using System.CommandLine;
using System.Globalization;
using System.Text;
using Microsoft.ML;
using MLNet.Lora.Cli.Data;

namespace MLNet.Lora.Cli.Commands;

/// <summary>
/// <c>predict</c>: batch scoring of a TSV/CSV file into a TSV with every input column, the predicted label and one
/// probability column per class. <c>--shard i/n</c> (or <c>--shards n</c> with <c>JOB_COMPLETION_INDEX</c>) scores the
/// i-th of n contiguous slices of the rows, so that the shards' outputs, concatenated in order, are the whole output.
/// </summary>
internal static class PredictCommand
{
    /// <summary>Rows scored per call: bounds memory and paces the progress lines.</summary>
    private const int Chunk = 512;

    public static Command Create(CliConsole console, Option<int?> threads)
    {
        var data = new DataOptionSet(labelRequired: false);
        var model = CommonOptions.Model();
        var output = CommonOptions.Output("The TSV file to write: the input's columns, PredictedLabel, and a probability per class.");
        var shard = new Option<ShardSpec?>("--shard")
        {
            Description = "Score only shard i of n (contiguous slices of the rows; 0-based): --shard 0/4.",
            CustomParser = r => ShardSpec.TryParse(r.Tokens.Single().Value, out var s, out string? error) ? s : Fail(r, error!),
        };
        var shards = CommonOptions.PositiveInt("--shards", $"Number of shards; the index comes from {ShardSpec.IndexVariable} (set in each pod of a Kubernetes Indexed Job).");
        var command = new Command("predict", "Score a TSV/CSV file: predicted label and class probabilities per row.") { model, output, shard, shards };
        data.AddTo(command);
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads, ct =>
        {
            var part = ShardSpec.Resolve(parse.GetValue(shard), parse.GetValue(shards), Environment.GetEnvironmentVariable(ShardSpec.IndexVariable));
            var ml = new MLContext(seed: 1);
            using var saved = SavedModel.Load(ml, parse.GetValue(model)!.FullName);
            var settings = saved.Lora.Settings;
            // The model's column names decide, unless the user names the file's columns.
            var columns = new TextColumns(parse.GetResult(data.Text) is { Implicit: false } ? parse.GetValue(data.Text)! : settings.TextColumnName, null,
                parse.GetResult(data.SecondText) is { Implicit: false } ? parse.GetValue(data.SecondText) : settings.SecondTextColumnName);
            var table = DelimitedTable.Read(parse.GetValue(data.Dataset)!.FullName, parse.GetValue(data.HasHeader), parse.GetValue(data.Separator));
            int text = table.IndexOf(columns.Text, "--text-col");
            int? second = columns.SecondText is { } s ? table.IndexOf(s, "--second-text-col") : null;
            var (start, end) = part.Range(table.Rows.Count);
            string path = parse.GetValue(output)!;
            console.Note($"Scoring rows {start + 1} to {end} of {table.Rows.Count} (shard {part}) of '{table.Path}' with '{saved.Path}'.");

            var lines = new StringBuilder();
            lines.AppendLine(string.Join('\t', table.Columns.Concat(["PredictedLabel"]).Concat(saved.Classes.Select(c => $"Probability.{c}")).Select(Tsv.Escape)));
            for (int first = start; first < end; first += Chunk)
            {
                ct.ThrowIfCancellationRequested();
                var rows = Enumerable.Range(first, Math.Min(Chunk, end - first)).Select(i => table.Rows[i]).ToList();
                var probabilities = saved.Lora.PredictProbabilities(rows.Select(r => (string?)r[text]).ToList(),
                    second is { } si ? rows.Select(r => (string?)r[si]).ToList() : null);
                for (int i = 0; i < rows.Count; i++)
                {
                    var p = probabilities[i];
                    int best = 0;
                    for (int k = 1; k < p.Length; k++) if (p[k] > p[best]) best = k;
                    lines.AppendLine(string.Join('\t', rows[i].Concat([saved.Classes[best]]).Select(Tsv.Escape)
                        .Concat(p.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))));
                }
                if (!console.Interactive || first + Chunk >= end) console.Note($"{Math.Min(first + Chunk, end) - start} of {end - start} rows scored");
            }
            MLNet.Lora.IO.AtomicFile.WriteAllText(path, lines.ToString());
            console.Line($"Wrote {end - start} predictions to '{path}'.");
            return Task.FromResult(0);
        }, token));
        return command;
    }

    private static ShardSpec? Fail(System.CommandLine.Parsing.ArgumentResult result, string error)
    {
        result.AddError(error);
        return null;
    }
}
