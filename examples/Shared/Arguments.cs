using System.Globalization;

/// <summary><c>--name value</c> pairs.</summary>
internal sealed class Arguments
{
    private readonly Dictionary<string, string> values = new(StringComparer.OrdinalIgnoreCase);

    public static Arguments Parse(string[] args)
    {
        var result = new Arguments();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--") || i + 1 >= args.Length)
                throw new ArgumentException($"Expected '--name value' pairs, got '{args[i]}'.");
            result.values[args[i][2..]] = args[++i];
        }
        return result;
    }

    public string Get(string name, string fallback) => values.TryGetValue(name, out var value) ? value : fallback;

    public int GetInt(string name, int fallback) =>
        values.TryGetValue(name, out var value)
            ? int.TryParse(value, CultureInfo.InvariantCulture, out int parsed) && parsed > 0 ? parsed
              : throw new ArgumentException($"--{name} must be a positive whole number (was '{value}').")
            : fallback;
}
