using System.CommandLine;
using Microsoft.ML;

namespace MLNet.Lora.Cli.Commands;

/// <summary>
/// <c>export</c>: writes a model in another format: a PEFT adapter folder (Hugging Face PEFT reads it), or ONNX, one
/// entry of <see cref="Exporters"/> each.
/// </summary>
internal static class ExportCommand
{
    /// <summary>An exporter: writes <c>model</c> to <c>output</c>.</summary>
    public delegate void Exporter(MLContext ml, SavedModel model, string output, CliConsole console);

    /// <summary>The formats the tool writes, by name.</summary>
    public static IReadOnlyDictionary<string, Exporter> Exporters { get; } = new Dictionary<string, Exporter>(StringComparer.OrdinalIgnoreCase)
    {
        ["onnx"] = (ml, model, output, console) =>
        {
            model.Lora.ExportOnnx(output);
            console.Line($"Wrote the ONNX model '{output}' (adapters merged; score it with MLNet.Lora.Onnx or any ONNX runtime, see docs/deployment.md).");
        },
        ["peft"] = (ml, model, output, console) =>
        {
            model.Lora.SavePeftAdapter(output);
            console.Line($"Wrote the PEFT adapter folder '{output}' (adapter_config.json, adapter_model.safetensors, README.md, mlnet_lora.json).");
        },
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
            var export = Exporters[parse.GetValue(format)!];
            var ml = new MLContext(seed: 1);
            using var saved = SavedModel.Load(ml, parse.GetValue(model)!.FullName);
            export(ml, saved, parse.GetValue(output)!, console);
            return Task.FromResult(0);
        }, token));
        return command;
    }
}
