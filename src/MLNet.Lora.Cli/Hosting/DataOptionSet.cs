using System.CommandLine;
using MLNet.Lora.Cli.Data;

namespace MLNet.Lora.Cli;

/// <summary>The data options of a command (<c>--dataset</c>, the column names, <c>--has-header</c>, <c>--separator</c>) and how they read a file.</summary>
internal sealed class DataOptionSet(bool labelRequired, bool datasetRequired = true)
{
    public Option<FileInfo> Dataset { get; } = CommonOptions.Dataset(datasetRequired);

    public Option<string> Label { get; } = CommonOptions.LabelColumn();

    public Option<string> Text { get; } = CommonOptions.TextColumn();

    public Option<string?> SecondText { get; } = CommonOptions.SecondTextColumn();

    public Option<bool> HasHeader { get; } = CommonOptions.HasHeader();

    public Option<char?> Separator { get; } = CommonOptions.Separator();

    public void AddTo(Command command)
    {
        command.Add(Dataset);
        command.Add(Label);
        command.Add(Text);
        command.Add(SecondText);
        command.Add(HasHeader);
        command.Add(Separator);
    }

    public TextColumns Columns(ParseResult parse, bool withLabel = true) =>
        new(parse.GetValue(Text)!, withLabel && labelRequired ? parse.GetValue(Label) : null, parse.GetValue(SecondText));

    /// <summary>Reads <c>--dataset</c>, or <paramref name="path"/> with the same columns and format.</summary>
    public TextDataset Read(ParseResult parse, string? path = null) =>
        TextDataset.Read(path ?? parse.GetValue(Dataset)!.FullName, parse.GetValue(HasHeader), Columns(parse), parse.GetValue(Separator));
}
