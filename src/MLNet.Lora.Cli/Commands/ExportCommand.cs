using System.CommandLine;
using Microsoft.ML;

namespace MLNet.Lora.Cli.Commands;

/// <summary>
/// <c>export</c>: writes a model in another format: a PEFT adapter folder (Hugging Face PEFT reads it), or ONNX. The
/// formats come from <see cref="Exporters"/>: a format whose exporter this build lacks is named with what it needs, so
/// that wiring one in is one entry in that table.
/// </summary>
internal static class ExportCommand
{
    /// <summary>An exporter: writes <c>model</c> to <c>output</c>.</summary>
    public delegate void Exporter(MLContext ml, SavedModel model, string output, CliConsole console);

    /// <summary>The formats the tool knows, with their exporter (null: not in this build) and what they need.</summary>
    public static IReadOnlyDictionary<string, (Exporter? Export, string Needs)> Exporters { get; } = new Dictionary<string, (Exporter?, string)>(StringComparer.OrdinalIgnoreCase)
    {
        ["onnx"] = ((ml, model, output, console) =>
        {
            model.Lora.ExportOnnx(output);
            console.Line($"Wrote the ONNX model '{output}' (adapters merged; score it with MLNet.Lora.Onnx or any ONNX runtime, see docs/deployment.md).");
        }, "LoraTextClassificationTransformer.ExportOnnx"),
        ["peft"] = ((ml, model, output, console) =>
        {
            model.Lora.SavePeftAdapter(output);
            console.Line($"Wrote the PEFT adapter folder '{output}' (adapter_config.json, adapter_model.safetensors, README.md, mlnet_lora.json).");
        }, "LoraTextClassificationTransformer.SavePeftAdapter"),
    };

    public static Command Create(CliConsole console)
    {
        var model = CommonOptions.Model();
        var output = CommonOptions.Output("The file (onnx) or folder (peft) to write.");
        var format = new Option<string>("--format", "-f") { Description = "onnx or peft.", Required = true };
        format.AcceptOnlyFromAmong([.. Exporters.Keys]);
        var command = new Command("export", "Export a model to ONNX or to a PEFT adapter folder.") { model, format, output };
        command.SetAction((parse, token) => CliApp.Run(console, parse, threads: null, ct =>
        {
            string name = parse.GetValue(format)!;
            var (export, needs) = Exporters[name];
            if (export is null)
                throw new CliException($"Export to {name.ToUpperInvariant()} is not in this build of mlnet-lora: it needs {needs}. " +
                    "Update the tool when a release includes it; `mlnet-lora predict` scores with the model file as it is.");
            var ml = new MLContext(seed: 1);
            using var saved = SavedModel.Load(ml, parse.GetValue(model)!.FullName);
            export(ml, saved, parse.GetValue(output)!, console);
            return Task.FromResult(0);
        }, token));
        return command;
    }
}
