using System.Globalization;

namespace MLNet.Lora.Sweeps;

/// <summary>
/// How a sweep sets LoRA's alpha for each rank: a fixed value (the update's scale alpha / r then shrinks as the rank
/// grows), or a multiple of the rank (alpha = k·r keeps the scale at k whatever the rank).
/// </summary>
public readonly record struct AlphaSetting
{
    private AlphaSetting(double value, bool timesRank)
    {
        if (!(value > 0) || !double.IsFinite(value))
            throw new ArgumentOutOfRangeException(nameof(value), value, "An alpha setting must be a positive finite number.");
        Value = value;
        IsMultipleOfRank = timesRank;
    }

    /// <summary>The fixed alpha, or the multiple of the rank.</summary>
    public double Value { get; }

    /// <summary>Whether alpha is <see cref="Value"/> times the rank rather than <see cref="Value"/> itself.</summary>
    public bool IsMultipleOfRank { get; }

    /// <summary>Alpha is <paramref name="alpha"/> for every rank.</summary>
    public static AlphaSetting Fixed(double alpha) => new(alpha, timesRank: false);

    /// <summary>Alpha is <paramref name="multiple"/> × rank (2 is a common choice).</summary>
    public static AlphaSetting TimesRank(double multiple) => new(multiple, timesRank: true);

    /// <summary>The alpha for <paramref name="rank"/>.</summary>
    public double Resolve(int rank) => IsMultipleOfRank ? Value * rank : Value;

    /// <summary><c>16</c> for a fixed alpha, <c>2r</c> for twice the rank.</summary>
    public override string ToString() =>
        Value.ToString("G6", CultureInfo.InvariantCulture) + (IsMultipleOfRank ? "r" : "");

    /// <summary>Reads <see cref="ToString"/>'s form: <c>16</c> or <c>2r</c>.</summary>
    public static AlphaSetting Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        string trimmed = text.Trim();
        bool timesRank = trimmed.EndsWith('r') || trimmed.EndsWith('R');
        string number = timesRank ? trimmed[..^1] : trimmed;
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
            throw new FormatException($"'{text}' is not an alpha setting: write a number (16) or a multiple of the rank (2r).");
        return timesRank ? TimesRank(value) : Fixed(value);
    }
}
