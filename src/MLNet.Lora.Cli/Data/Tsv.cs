namespace MLNet.Lora.Cli.Data;

/// <summary>Writing TSV fields that <see cref="DelimitedTable"/> reads back: a field with a tab, a line break or a quote is quoted.</summary>
internal static class Tsv
{
    public static string Escape(string field) =>
        field.AsSpan().IndexOfAny("\t\r\n\"") >= 0 ? "\"" + field.Replace("\"", "\"\"") + "\"" : field;
}
