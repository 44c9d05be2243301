using System.Globalization;
using System.Text;

namespace MLNet.Lora.Benchmarks;

/// <summary>Prints figures as they come and keeps them for the closing summary and the optional Markdown file.</summary>
internal sealed class Report
{
    private sealed record Row(string Section, string Figure, Spread Value, string Unit, string Format, string? Target, bool? Met, string? Note);

    private readonly List<Row> rows = new();
    private string section = "";

    public void Section(string title)
    {
        section = title;
        Console.WriteLine();
        Console.WriteLine($"== {title} ==");
    }

    public static void Line(string text) => Console.WriteLine($"  {text}");

    /// <summary>A measured figure with its spread (min / median / max).</summary>
    public void Figure(string figure, Spread value, string unit, string format = "F3", string? note = null)
    {
        rows.Add(new Row(section, figure, value, unit, format, null, null, note));
        Console.WriteLine($"  {figure,-58} {value.Format(format),-30} {unit}{(note is null ? "" : "  " + note)}");
    }

    /// <summary>A single value (a size, an accuracy), shown as a spread of one.</summary>
    public void Value(string figure, double value, string unit, string format = "F3", string? note = null) =>
        Figure(figure, new Spread(value, value, value), unit, format, note);

    /// <summary>A figure with a target; met when the median satisfies it.</summary>
    public void Target(string figure, Spread value, string unit, string comparison, double threshold, string format = "F3", string? note = null)
    {
        bool met = comparison switch
        {
            "<=" => value.Median <= threshold,
            "<" => value.Median < threshold,
            ">=" => value.Median >= threshold,
            ">" => value.Median > threshold,
            _ => throw new ArgumentException(comparison),
        };
        string target = $"{comparison} {threshold.ToString(format, CultureInfo.InvariantCulture)}";
        rows.Add(new Row(section, figure, value, unit, format, target, met, note));
        Console.WriteLine($"  {figure,-58} {value.Format(format),-30} {unit}  target {target}: {(met ? "MET" : "NOT MET")}{(note is null ? "" : "  " + note)}");
    }

    public void PrintSummary()
    {
        var targets = rows.Where(r => r.Target is not null).ToList();
        if (targets.Count == 0) return;
        Console.WriteLine();
        Console.WriteLine("== Targets (median decides) ==");
        foreach (var r in targets)
            Console.WriteLine($"  {(r.Met == true ? "MET    " : "NOT MET")}  {r.Figure,-58} {r.Value.Median.ToString(r.Format)} {r.Unit} (target {r.Target})");
    }

    /// <summary>Writes every figure as Markdown, one table per section, atomically (a temporary file, then a rename).</summary>
    public void WriteMarkdown(string path, string header)
    {
        var text = new StringBuilder();
        text.AppendLine(string.Join("  \n", header.Split('\n'))).AppendLine();
        foreach (var section in rows.GroupBy(r => r.Section))
        {
            text.AppendLine($"### {section.Key}").AppendLine();
            text.AppendLine("| figure | min | median | max | unit | target | |");
            text.AppendLine("|---|---:|---:|---:|---|---|---|");
            foreach (var r in section)
            {
                string met = r.Met switch { true => "met", false => "**not met**", null => "" };
                text.AppendLine($"| {r.Figure}{(r.Note is null ? "" : $" ({r.Note})")} | {r.Value.Min.ToString(r.Format)} | {r.Value.Median.ToString(r.Format)} | " +
                                $"{r.Value.Max.ToString(r.Format)} | {r.Unit} | {r.Target} | {met} |");
            }
            text.AppendLine();
        }
        string full = Path.GetFullPath(path);
        string temporary = full + ".tmp";
        File.WriteAllText(temporary, text.ToString());
        File.Move(temporary, full, overwrite: true);
        Console.WriteLine($"Wrote {full}");
    }
}
