using System.Globalization;
using System.Text;

namespace MLNet.Lora.Sweeps;

/// <summary>CSV and text reports of sweep trials (the chart is in MLNet.Lora.Charts' <c>SweepCharts</c>) (also for trials gathered from several sweeps).</summary>
internal static class SweepReports
{
    /// <summary>The CSV header, in order.</summary>
    public static IReadOnlyList<string> CsvColumns { get; } =
    [
        "trial", "rung", "rank", "alpha", "alpha_setting", "target_modules", "learning_rate", "epochs",
        "accuracy", "macro_accuracy", "macro_f1", "log_loss", "trainable_parameters", "adapter_file_bytes",
        "training_seconds", "training_cpu_seconds", "forgetting", "pareto_optimal", "promoted", "best", "error",
    ];

    /// <summary>
    /// Writes <paramref name="trials"/> as CSV (RFC 4180, invariant culture, empty cells for missing values). The file is
    /// written beside the target and renamed over it, so a reader never sees half a file.
    /// </summary>
    public static void SaveCsv(IEnumerable<LoraSweepTrial> trials, string path)
    {
        ArgumentNullException.ThrowIfNull(trials);
        var text = new StringBuilder();
        text.AppendLine(string.Join(',', CsvColumns));
        foreach (var t in trials)
        {
            string?[] cells =
            [
                Int(t.Number), Int(t.Rung), Int(t.Settings.Rank), Number(t.Settings.Alpha), t.Settings.AlphaSetting.ToString(),
                LoraTrialSettings.FormatModules(t.Settings.TargetModules), Number(t.Settings.LearningRate), Int(t.Epochs),
                Number(t.Accuracy), Number(t.MacroAccuracy), Number(t.MacroF1), Number(t.LogLoss),
                t.Succeeded ? t.TrainableParameters.ToString(CultureInfo.InvariantCulture) : null,
                t.AdapterFileBytes?.ToString(CultureInfo.InvariantCulture),
                Number(t.TrainingTime.TotalSeconds), Number(t.TrainingCpuTime.TotalSeconds), t.Forgetting is { } f ? Number(f) : null,
                Bool(t.IsParetoOptimal), Bool(t.Promoted), Bool(t.IsBest), t.Error,
            ];
            text.AppendLine(string.Join(',', cells.Select(Escape)));
        }
        WriteAtomically(path, Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>A fixed-width table of the trials.</summary>
    public static string Table(IEnumerable<LoraSweepTrial> trials)
    {
        ArgumentNullException.ThrowIfNull(trials);
        var text = new StringBuilder();
        text.AppendLine($"{"#",3} {"round",5} {"rank",4} {"alpha",6} {"modules",-14} {"lr",7} {"ep",3} {"accuracy",8} {"macroF1",7} {"trainable",10} {"file KiB",8} {"train s",7} {"cpu s",7} {"forget",7}  front");
        foreach (var t in trials)
        {
            if (!t.Succeeded)
            {
                text.AppendLine($"{t.Number,3} {t.Rung,5} {t.Settings.Rank,4} {t.Settings.Alpha,6:G4} {LoraTrialSettings.FormatModules(t.Settings.TargetModules),-14} {t.Settings.LearningRate,7:G2} {t.Epochs,3} failed: {t.Error}");
                continue;
            }
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{t.Number,3} {t.Rung,5} {t.Settings.Rank,4} {t.Settings.Alpha,6:G4} {LoraTrialSettings.FormatModules(t.Settings.TargetModules),-14} {t.Settings.LearningRate,7:G2} {t.Epochs,3} " +
                $"{t.Accuracy,8:F4} {t.MacroF1,7:F4} {t.TrainableParameters,10:N0} {(t.AdapterFileBytes is { } b ? (b / 1024.0).ToString("F0", CultureInfo.InvariantCulture) : "-"),8} " +
                $"{t.TrainingTime.TotalSeconds,7:F1} {t.TrainingCpuTime.TotalSeconds,7:F1} {(t.Forgetting is { } f ? f.ToString("F4", CultureInfo.InvariantCulture) : "-"),7}  " +
                $"{(t.IsParetoOptimal ? "*" : "")}{(t.IsBest ? " best" : "")}{(t.Promoted ? " promoted" : "")}"));
        }
        return text.ToString();
    }

    /// <summary>Writes beside <paramref name="path"/> and renames over it; the folder must exist.</summary>
    internal static void WriteAtomically(string path, byte[] bytes) => IO.AtomicFile.Write(path, stream => stream.Write(bytes), createFolder: false);

    private static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string? Number(double value) => double.IsNaN(value) ? null : value.ToString("R", CultureInfo.InvariantCulture);

    private static string Bool(bool value) => value ? "true" : "false";

    private static string Escape(string? cell)
    {
        if (cell is null) return "";
        return cell.IndexOfAny([',', '"', '\n', '\r']) < 0 ? cell : "\"" + cell.Replace("\"", "\"\"") + "\"";
    }
}
