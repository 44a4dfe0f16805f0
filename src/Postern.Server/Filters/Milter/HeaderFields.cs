namespace Postern.Server.Filters.Milter;

/// <summary>
/// Splits a header section (RFC 5322 §2.2) into fields as a milter is given them (SMFIC_HEADER):
/// the name, and the value after the colon with its folded lines joined by a bare LF and the
/// continuation's leading white space kept, as Sendmail and Postfix send them. Sans I/O.
/// </summary>
internal static class HeaderFields
{
    /// <summary>One field: its name, its value as sent to the milter.</summary>
    public readonly record struct Field(ReadOnlyMemory<byte> Name, byte[] Value);

    /// <param name="section">The header section, with or without the empty line that ends it.</param>
    /// <param name="keepLeadingSpace">SMFIP_HDR_LEADSPC: send the value exactly as after the colon; else without its leading white space.</param>
    public static List<Field> Split(ReadOnlyMemory<byte> section, bool keepLeadingSpace)
    {
        var fields = new List<Field>();
        ReadOnlyMemory<byte> name = default;
        var value = new List<byte>();
        var open = false;
        var rest = section;
        while (rest.Length > 0)
        {
            var span = rest.Span;
            var lf = span.IndexOf((byte)'\n');
            var lineLength = lf < 0 ? span.Length : lf;
            var next = lf < 0 ? span.Length : lf + 1;
            var line = rest[..lineLength];
            if (line.Length > 0 && line.Span[^1] == '\r')
            {
                line = line[..^1];
            }
            rest = rest[next..];
            if (line.Length == 0)
            {
                break; // The empty line: the body follows.
            }
            var l = line.Span;
            if (l[0] is (byte)' ' or (byte)'\t')
            {
                // RFC 5322 §2.2.3: a folded line continues the field above it.
                if (open)
                {
                    value.Add((byte)'\n');
                    value.AddRange(l);
                }
                continue;
            }
            if (open)
            {
                fields.Add(new Field(name, value.ToArray()));
                value.Clear();
            }
            var colon = l.IndexOf((byte)':');
            if (colon <= 0)
            {
                // Not a field (the session refuses such messages before this); nothing to send.
                open = false;
                continue;
            }
            var nameEnd = colon;
            while (nameEnd > 0 && l[nameEnd - 1] is (byte)' ' or (byte)'\t')
            {
                nameEnd--;
            }
            name = line[..nameEnd];
            var v = l[(colon + 1)..];
            if (!keepLeadingSpace)
            {
                v = v.TrimStart(" \t"u8);
            }
            value.AddRange(v);
            open = true;
        }
        if (open)
        {
            fields.Add(new Field(name, value.ToArray()));
        }
        return fields;
    }
}
