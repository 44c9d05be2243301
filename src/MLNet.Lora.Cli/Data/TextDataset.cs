using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNet.Lora.Cli.Data;

/// <summary>
/// The columns a command needs, picked by name out of a <see cref="DelimitedTable"/>, as an ML.NET data view whose
/// columns carry the names the user gave (so a saved model reads the same names again).
/// </summary>
internal sealed class TextDataset
{
    private TextDataset(DelimitedTable table, TextColumns columns, IReadOnlyList<TextRow> rows)
    {
        Table = table;
        Columns = columns;
        Rows = rows;
    }

    public DelimitedTable Table { get; }

    public TextColumns Columns { get; }

    public IReadOnlyList<TextRow> Rows { get; }

    /// <summary>Reads <paramref name="path"/> and picks the columns; a label column is read only when named.</summary>
    public static TextDataset Read(string path, bool hasHeader, TextColumns columns, char? separator = null)
    {
        var table = DelimitedTable.Read(path, hasHeader, separator);
        int text = table.IndexOf(columns.Text, "--text-col");
        int? second = columns.SecondText is { } s ? table.IndexOf(s, "--second-text-col") : null;
        int? label = columns.Label is { } l ? table.IndexOf(l, "--label-col") : null;
        var rows = new TextRow[table.Rows.Count];
        for (int i = 0; i < rows.Length; i++)
        {
            var fields = table.Rows[i];
            if (label is { } li && string.IsNullOrWhiteSpace(fields[li]))
                throw new CliException($"{path}, line {table.RowLines[i]}: the label ('{columns.Label}') is empty.");
            rows[i] = new TextRow { Text = fields[text], SecondText = second is { } si ? fields[si] : null, Label = label is { } lj ? fields[lj].Trim() : null };
        }
        return new TextDataset(table, columns, rows);
    }

    /// <summary>The rows as a data view with the user's column names.</summary>
    public IDataView ToDataView(MLContext ml) => ToDataView(ml, Rows, Columns);

    public static IDataView ToDataView(MLContext ml, IEnumerable<TextRow> rows, TextColumns columns)
    {
        var schema = SchemaDefinition.Create(typeof(TextRow));
        Rename(schema, nameof(TextRow.Text), columns.Text);
        Rename(schema, nameof(TextRow.SecondText), columns.SecondText);
        Rename(schema, nameof(TextRow.Label), columns.Label);
        return ml.Data.LoadFromEnumerable(rows, schema);
    }

    private static void Rename(SchemaDefinition schema, string member, string? name)
    {
        var column = schema.Single(c => c.MemberName == member);
        if (name is null) schema.Remove(column);
        else column.ColumnName = name;
    }
}

/// <summary>The column names a command reads: the text, an optional second text (pairs), and the label when there is one.</summary>
internal sealed record TextColumns(string Text, string? Label, string? SecondText = null);

/// <summary>One row as the commands read it.</summary>
internal sealed class TextRow
{
    public string Text { get; set; } = "";

    public string? SecondText { get; set; }

    public string? Label { get; set; }
}
