using System.Text;

namespace MLNet.Lora.Tokenization;

/// <summary>
/// Replaces invalid UTF-16 (a surrogate without its partner) by U+FFFD, as .NET's encoders do. The tokenizer's
/// normalizer throws on such text, and one bad row must not fail a whole fit or scoring pass.
/// </summary>
internal static class InvalidText
{
    /// <summary>Repairs <paramref name="text"/> in place; true when something was replaced.</summary>
    public static bool Replace(ref string? text)
    {
        if (text is null || text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0) return false;   // no surrogates: the common case
        var builder = new StringBuilder(text.Length);
        bool replaced = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                builder.Append(c).Append(text[++i]);
            }
            else if (char.IsSurrogate(c))
            {
                builder.Append('\uFFFD');
                replaced = true;
            }
            else
            {
                builder.Append(c);
            }
        }
        if (replaced) text = builder.ToString();
        return replaced;
    }
}
