using System.CommandLine;
using Microsoft.ML;
using MLNet.Lora.Cli.Data;

namespace MLNet.Lora.Cli.Commands;

/// <summary>
/// <c>train</c>: fine-tunes on a TSV/CSV file and saves a model file (label mapping, LoRA classifier, predicted label
/// mapped back) with <c>SaveWithAdapters</c>, atomically, only when training finished: Ctrl+C leaves no file.
/// </summary>
internal static class TrainCommand
{
    public static Command Create(CliConsole console, Option<int?> threads)
    {
        var data = new DataOptionSet(labelRequired: true);
        var validation = CommonOptions.ValidationDataset();
        var output = CommonOptions.Output("The model file to write (.zip).");
        var trainer = new TrainerOptionSet(sweptByTheCaller: false);
        var command = new Command("train", "Fine-tune a text classifier with LoRA and save it.") { validation, output };
        data.AddTo(command);
        trainer.AddTo(command);
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads, ct =>
        {
            var columns = data.Columns(parse);
            var train = data.Read(parse);
            var valid = parse.GetValue(validation) is { } v ? data.Read(parse, v.FullName) : null;
            var options = trainer.Bind(parse, columns);
            options.CancellationToken = ct;
            string path = parse.GetValue(output)!;
            CheckWritable(path);

            var ml = new MLContext(options.Seed);
            var trainView = train.ToDataView(ml);
            var mapper = ml.Transforms.Conversion.MapValueToKey(columns.Label!).Fit(trainView);
            if (valid is not null) LabelCheck.AllKnown(valid, train.Rows.Select(r => r.Label!).Distinct().ToList());
            console.Note($"Training on {train.Rows.Count} rows of '{train.Table.Path}'" + (valid is null ? "" : $", validating on {valid.Rows.Count} rows") +
                $": {TrainerOptionSet.Describe(options)}.");

            var keyedTrain = mapper.Transform(trainView);
            var keyedValid = valid is null ? null : mapper.Transform(valid.ToDataView(ml));
            using var lora = TrainingProgressDisplay.Run(console, "training",
                progress => { options.Progress = progress; return new LoraTextClassificationTrainer(ml, options).Fit(keyedTrain, keyedValid); });
            var backToValues = ml.Transforms.Conversion.MapKeyToValue(options.PredictedLabelColumnName).Fit(lora.Transform(keyedTrain));
            var model = new Microsoft.ML.Data.TransformerChain<ITransformer>(mapper, lora, backToValues);
            ml.Model.SaveWithAdapters(model, trainView.Schema, path);

            foreach (var epoch in lora.TrainingHistory)
                console.Line($"epoch {epoch.Epoch}: training loss {epoch.TrainingLoss:F4}" +
                    (epoch.ValidationAccuracy is { } a ? $", validation accuracy {a:F4}, validation loss {epoch.ValidationLoss:F4}" : "") +
                    $", {epoch.TrainingTime.TotalSeconds:F1} s");
            console.Line($"Saved '{path}' ({new FileInfo(path).Length / 1024.0:F0} KiB, {lora.TrainedParameterCount:N0} trained parameters, classes: {string.Join(", ", lora.Settings.Classes?.Values ?? [])}).");
            return Task.FromResult(0);
        }, token));
        return command;
    }

    /// <summary>Fails before training, not after: the folder must exist and the target must not be a folder.</summary>
    private static void CheckWritable(string path)
    {
        if (Directory.Exists(path)) throw new CliException($"--output '{path}' is a folder; name the model file (for example model.zip).");
        string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(folder)) throw new CliException($"--output: the folder '{folder}' does not exist.");
    }
}
