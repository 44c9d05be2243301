using System.Text;

namespace MLNet.Lora.Cli.Data;

/// <summary>
/// A TSV or CSV file read whole: a header of column names (or <c>col0, col1, ...</c> without one) and rows of fields.
/// Fields may be quoted (<c>"a, b"</c>, <c>""</c> for a quote inside, line breaks inside quotes). A row with the wrong
/// number of fields or an unterminated quote is an error that names the file and line.
/// </summary>
internal sealed class DelimitedTable
{
    private readonly Dictionary<string, int> indexByName;

    private DelimitedTable(string path, char separator, IReadOnlyList<string> columns, IReadOnlyList<string[]> rows, IReadOnlyList<int> lines)
    {
        Path = path;
        Separator = separator;
        Columns = columns;
        Rows = rows;
        RowLines = lines;
        indexByName = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < columns.Count; i++) indexByName.TryAdd(columns[i], i);
    }

    public string Path { get; }

    public char Separator { get; }

    public IReadOnlyList<string> Columns { get; }

    public IReadOnlyList<string[]> Rows { get; }

    /// <summary>The 1-based line each row starts on.</summary>
    public IReadOnlyList<int> RowLines { get; }

    /// <summary>The separator a file name implies: comma for <c>.csv</c>, tab otherwise.</summary>
    public static char SeparatorFor(string path) =>
        System.IO.Path.GetExtension(path).Equals(".csv", StringComparison.OrdinalIgnoreCase) ? ',' : '\t';

    /// <summary>The index of column <paramref name="name"/>; <paramref name="option"/> names the command-line option that chose it.</summary>
    /// <exception cref="CliException">No such column: the message lists the columns there are.</exception>
    public int IndexOf(string name, string option) => indexByName.TryGetValue(name, out int index) ? index
        : throw new CliException($"The column '{name}' ({option}) is not in '{Path}'. Its columns: {string.Join(", ", Columns.Select(c => $"'{c}'"))}." +
            (Columns.Count == 1 ? $" Only one column was found: is the separator right (read as {(Separator == '\t' ? "tab" : $"'{Separator}'")})?" : ""));

    public static DelimitedTable Read(string path, bool hasHeader, char? separator = null)
    {
        if (!File.Exists(path))
            throw new CliException(Directory.Exists(path) ? $"'{path}' is a folder; give the data file." : $"The data file '{path}' does not exist.");
        char sep = separator ?? SeparatorFor(path);
        string text = File.ReadAllText(path, Encoding.UTF8);
        var records = Parse(text, sep, path);
        if (records.Count == 0 || (records.Count == 1 && hasHeader))
            throw new CliException(records.Count == 0 ? $"The data file '{path}' is empty." : $"The data file '{path}' has a header but no rows.");

        int first = hasHeader ? 1 : 0;
        int width = records[0].Fields.Length;
        var columns = hasHeader ? records[0].Fields.Select(f => f.Trim()).ToArray() : Enumerable.Range(0, width).Select(i => $"col{i}").ToArray();
        var rows = new List<string[]>(records.Count - first);
        var lines = new List<int>(records.Count - first);
        for (int i = first; i < records.Count; i++)
        {
            var (fields, line) = records[i];
            if (fields.Length != width)
                throw new CliException($"{path}, line {line}: the row has {fields.Length} fields, the {(hasHeader ? "header" : "first row")} has {width}" +
                    $" (separator {(sep == '\t' ? "tab" : $"'{sep}'")}; quote a field that holds the separator).");
            rows.Add(fields);
            lines.Add(line);
        }
        return new DelimitedTable(path, sep, columns, rows, lines);
    }

    /// <summary>RFC 4180-style records; blank lines are skipped. Each record keeps the line it starts on.</summary>
    private static List<(string[] Fields, int Line)> Parse(string text, char separator, string path)
    {
        var records = new List<(string[], int)>();
        var fields = new List<string>();
        var field = new StringBuilder();
        int line = 1, recordLine = 1, i = 0;
        bool quoted = false, fieldWasQuoted = false, any = false;
        if (text.Length > 0 && text[0] == '\uFEFF') i = 1;     // a byte-order mark is not part of the first column's name

        void EndField()
        {
            fields.Add(field.ToString());
            field.Clear();
            fieldWasQuoted = false;
        }
        void EndRecord()
        {
            EndField();
            if (!(fields.Count == 1 && fields[0].Length == 0 && !any)) records.Add((fields.ToArray(), recordLine));
            fields.Clear();
            any = false;
        }

        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"')
                {
                    if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                    else quoted = false;
                }
                else
                {
                    if (c == '\n') line++;
                    field.Append(c);
                }
                continue;
            }
            if (c == '"' && field.Length == 0 && !fieldWasQuoted)
            {
                quoted = fieldWasQuoted = any = true;
            }
            else if (c == '"')
            {
                throw new CliException($"{path}, line {line}: a quote inside an unquoted field; quote the whole field and double the quotes inside (\"say \"\"hi\"\"\").");
            }
            else if (fieldWasQuoted && c != separator && c != '\r' && c != '\n')
            {
                throw new CliException($"{path}, line {line}: text after a closing quote; a quoted field must end at the separator or the line's end.");
            }
            else if (c == separator)
            {
                EndField();
                any = true;
            }
            else if (c == '\r' || c == '\n')
            {
                if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
                EndRecord();
                line++;
                recordLine = line;
            }
            else
            {
                field.Append(c);
                any = true;
            }
        }
        if (quoted) throw new CliException($"{path}, line {recordLine}: a quoted field is never closed.");
        if (field.Length > 0 || fields.Count > 0 || any) EndRecord();
        return records;
    }
}
