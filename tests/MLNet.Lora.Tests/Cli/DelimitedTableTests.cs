using MLNet.Lora.Cli;
using MLNet.Lora.Cli.Data;

namespace MLNet.Lora.Tests.Cli;

/// <summary>Reading TSV/CSV files: header, quoted fields, columns by name, and errors that name the file, line and column.</summary>
public sealed class DelimitedTableTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("mlnet-lora-table-").FullName;

    private string Write(string name, string text)
    {
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ReadsQuotedFieldsAndPicksColumnsByName()
    {
        string csv = Write("data.csv", "\uFEFFid,Text,Label\r\n1,\"great, really\",pos\r\n\r\n2,\"she said \"\"no\"\"\nthen left\",neg\n3,plain,pos");
        var table = DelimitedTable.Read(csv, hasHeader: true);
        table.Separator.Should().Be(',');
        table.Columns.Should().Equal("id", "Text", "Label");
        table.Rows.Select(r => r[1]).Should().Equal("great, really", "she said \"no\"\nthen left", "plain");
        table.RowLines.Should().Equal(new[] { 2, 4, 6 }, "a quoted line break moves the next row's line");

        var data = TextDataset.Read(csv, hasHeader: true, new TextColumns("Text", "Label"));
        data.Rows.Select(r => r.Label).Should().Equal("pos", "neg", "pos");

        string tsv = Write("data.tsv", "a\tb\nx, y\tz\n");
        DelimitedTable.Read(tsv, hasHeader: false).Columns.Should().Equal("col0", "col1");
        DelimitedTable.Read(tsv, hasHeader: false).Rows[0].Should().Equal("a", "b");
        DelimitedTable.Read(tsv, hasHeader: true).Rows.Single().Should().Equal("x, y", "z");

        // What predict writes, the reader reads back.
        string[] awkward = ["tab\there", "quote \"q\"", "line\nbreak", "plain"];
        string written = Write("round.tsv", string.Join('\t', awkward.Select((_, i) => $"c{i}")) + "\n" + string.Join('\t', awkward.Select(Tsv.Escape)) + "\n");
        DelimitedTable.Read(written, hasHeader: true).Rows.Single().Should().Equal(awkward);
    }

    [Fact]
    public void BadFilesAreRefusedWithTheFileLineAndColumn()
    {
        string good = Write("good.tsv", "Label\tText\npos\tgreat\n");
        var missingColumn = () => TextDataset.Read(good, true, new TextColumns("Review", "Label"));
        missingColumn.Should().Throw<CliException>().WithMessage($"The column 'Review' (--text-col) is not in '{good}'. Its columns: 'Label', 'Text'.");

        var wrongSeparator = () => TextDataset.Read(Write("semi.tsv", "Label;Text\npos;great\n"), true, new TextColumns("Text", "Label"));
        wrongSeparator.Should().Throw<CliException>().WithMessage("*Only one column was found: is the separator right (read as tab)?*");

        var empty = () => DelimitedTable.Read(Write("empty.tsv", ""), true);
        empty.Should().Throw<CliException>().WithMessage("*empty.tsv' is empty.");
        var headerOnly = () => DelimitedTable.Read(Write("header.tsv", "Label\tText\n\n"), true);
        headerOnly.Should().Throw<CliException>().WithMessage("*has a header but no rows.");

        var shortRow = () => DelimitedTable.Read(Write("short.tsv", "Label\tText\npos\tgreat\nneg\n"), true);
        shortRow.Should().Throw<CliException>().WithMessage("*short.tsv, line 3: the row has 1 fields, the header has 2*");
        var unclosed = () => DelimitedTable.Read(Write("open.csv", "Label,Text\npos,great\nneg,\"never closed\n"), true);
        unclosed.Should().Throw<CliException>().WithMessage("*open.csv, line 3: a quoted field is never closed.");
        var stray = () => DelimitedTable.Read(Write("stray.csv", "Label,Text\npos,say \"hi\"\n"), true);
        stray.Should().Throw<CliException>().WithMessage("*stray.csv, line 2: a quote inside an unquoted field*");
        var emptyLabel = () => TextDataset.Read(Write("nolabel.tsv", "Label\tText\npos\tgreat\n \tbad\n"), true, new TextColumns("Text", "Label"));
        emptyLabel.Should().Throw<CliException>().WithMessage("*nolabel.tsv, line 3: the label ('Label') is empty.");
        var noFile = () => DelimitedTable.Read(Path.Combine(folder, "none.tsv"), true);
        noFile.Should().Throw<CliException>().WithMessage("*none.tsv' does not exist.");
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);
}
