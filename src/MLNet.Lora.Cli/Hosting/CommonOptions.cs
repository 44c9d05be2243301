using System.CommandLine;

namespace MLNet.Lora.Cli;

/// <summary>The options several commands share, named as the <c>mlnet</c> CLI names them where it has them.</summary>
internal static class CommonOptions
{
    public static Option<FileInfo> Dataset(bool required = true) => new("--dataset", "-d")
    {
        Description = "The data file: TSV, or CSV when it ends in .csv (first line: column names, unless --has-header false).",
        Required = required,
    };

    public static Option<FileInfo> ValidationDataset(bool required = false) => new("--validation-dataset", "-v")
    {
        Description = "Validation data with the same columns.",
        Required = required,
    };

    public static Option<string> LabelColumn() => new("--label-col")
    {
        Description = "The label column's name.",
        DefaultValueFactory = _ => "Label",
    };

    public static Option<string> TextColumn() => new("--text-col")
    {
        Description = "The text column's name.",
        DefaultValueFactory = _ => "Text",
    };

    public static Option<string?> SecondTextColumn() => new("--second-text-col")
    {
        Description = "A second text column, for sentence-pair tasks (entailment, paraphrase).",
    };

    /// <summary><c>--has-header</c> alone or followed by true/false, as in <c>mlnet</c>; default true.</summary>
    public static Option<bool> HasHeader() => new("--has-header")
    {
        Description = "Whether the data files' first line names the columns (--has-header, --has-header true|false; default true).",
        DefaultValueFactory = _ => true,
        Arity = ArgumentArity.ZeroOrOne,
    };

    public static Option<char?> Separator() => new("--separator")
    {
        Description = "Column separator: tab, comma or a single character (default: comma for .csv, tab otherwise).",
        CustomParser = result =>
        {
            string text = result.Tokens.Single().Value;
            switch (text.ToLowerInvariant())
            {
                case "tab" or "\\t": return '\t';
                case "comma": return ',';
                case "semicolon": return ';';
                case { Length: 1 }: return text[0];
                default:
                    result.AddError($"--separator takes tab, comma, semicolon or one character, not '{text}'.");
                    return null;
            }
        },
    };

    public static Option<FileInfo> Model(bool required = true) => new("--model", "-m")
    {
        Description = "A model file saved by `mlnet-lora train` or SaveWithAdapters.",
        Required = required,
    };

    public static Option<string> Output(string description, bool required = true) => new("--output", "-o")
    {
        Description = description,
        Required = required,
    };

    public static Option<int?> Threads()
    {
        var option = PositiveInt("--threads", "Torch intra-op threads (default: MLNET_LORA_THREADS, else the container's CPU quota, else every processor).");
        option.Recursive = true;
        return option;
    }

    /// <summary>A whole number of at least 1; anything else is an error naming the option and the value.</summary>
    public static Option<int?> PositiveInt(string name, string description, params string[] aliases) => new(name, aliases)
    {
        Description = description,
        CustomParser = result =>
        {
            string text = result.Tokens.Single().Value;
            if (int.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out int value) && value >= 1)
                return value;
            result.AddError($"{name} must be a whole number of at least 1 (was '{text}').");
            return null;
        },
    };

    /// <summary>A number that <paramref name="valid"/> accepts; anything else is an error naming the option, the value and the <paramref name="rule"/>.</summary>
    public static Option<double?> Number(string name, string description, Func<double, bool> valid, string rule) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            string text = result.Tokens.Single().Value;
            if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value) && valid(value))
                return value;
            result.AddError($"{name} must be a number {rule} (was '{text}').");
            return null;
        },
    };

    /// <summary>A comma-separated list (<c>2,4,8</c>), each item parsed by <paramref name="parse"/>; an item that does not parse is an error naming the option.</summary>
    public static Option<IReadOnlyList<T>?> List<T>(string name, string description, Func<string, T> parse, string example) => new(name)
    {
        Description = $"{description} (comma-separated, e.g. {example}).",
        CustomParser = result =>
        {
            var items = new List<T>();
            foreach (string part in string.Join(',', result.Tokens.Select(t => t.Value)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                try
                {
                    items.Add(parse(part));
                }
                catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
                {
                    result.AddError($"{name}: '{part}' is not valid: {e.Message} Example: {name} {example}.");
                    return null;
                }
            }
            if (items.Count == 0) result.AddError($"{name} needs at least one value, e.g. {name} {example}.");
            return items;
        },
    };
}
