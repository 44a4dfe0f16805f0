namespace Postern.MailAuth.Dkim;

/// <summary>
/// A DKIM tag=value list (RFC 6376 §3.2), the syntax of both the DKIM-Signature field and the key
/// record. Tag names are case-sensitive; values are kept as written with surrounding whitespace
/// removed (callers strip inner folding whitespace where the tag allows it, as in b=, bh= and p=).
/// </summary>
internal sealed class DkimTagList
{
    private readonly Dictionary<string, string> _tags = new(StringComparer.Ordinal);

    /// <summary>The tag names in the order they appeared (the key record's v= must come first).</summary>
    public List<string> Order { get; } = [];

    public string? this[string name] => _tags.GetValueOrDefault(name);

    public bool Contains(string name) => _tags.ContainsKey(name);

    /// <summary>Parses a tag list; null and an error when it breaks the grammar.</summary>
    public static DkimTagList? Parse(string text, out string? error)
    {
        var list = new DkimTagList();
        error = null;
        foreach (var spec in text.Split(';'))
        {
            // RFC 6376 §3.2: tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]. An empty spec is
            // only allowed as the trailing ";", but "a=1;; b=2" harms nobody, so it is let through.
            if (IsBlank(spec))
            {
                continue;
            }
            var eq = spec.IndexOf('=');
            if (eq < 0)
            {
                error = $"tag without '=': {Trim(spec)}";
                return null;
            }
            var name = Trim(spec.AsSpan(0, eq));
            if (!IsTagName(name))
            {
                error = $"bad tag name '{name}'";
                return null;
            }
            // "Tags with duplicate names MUST NOT occur within a single tag-list; if a tag name does occur
            // more than once, the entire tag-list is invalid."
            if (!list._tags.TryAdd(name, Trim(spec.AsSpan(eq + 1))))
            {
                error = $"duplicate tag {name}=";
                return null;
            }
            list.Order.Add(name);
        }
        return list;
    }

    /// <summary>The value with every folding whitespace character removed (base64 and colon lists allow FWS anywhere).</summary>
    public static string Compact(string value)
    {
        if (!value.AsSpan().ContainsAny(" \t\r\n"))
        {
            return value;
        }
        return string.Create(value.Length - value.Count(IsFws), value, static (span, v) =>
        {
            var i = 0;
            foreach (var c in v)
            {
                if (!IsFws(c))
                {
                    span[i++] = c;
                }
            }
        });
    }

    /// <summary>A colon-separated list (h=, q=, and the key record's h=, s=, t=), entries compacted.</summary>
    public static string[] ColonList(string value) => Compact(value).Split(':');

    private static bool IsTagName(string name) =>
        name.Length > 0 && char.IsAsciiLetter(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    private static bool IsFws(char c) => c is ' ' or '\t' or '\r' or '\n';

    private static bool IsBlank(string s) => s.All(IsFws);

    private static string Trim(ReadOnlySpan<char> s) => s.Trim(" \t\r\n").ToString();
}
