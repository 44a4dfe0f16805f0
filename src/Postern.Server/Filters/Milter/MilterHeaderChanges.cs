using System.Text;

namespace Postern.Server.Filters.Milter;

/// <summary>
/// Applies a milter's header changes (add, insert, change, delete) to the header section it was
/// sent, as Sendmail and Postfix do: insert positions count every field (0 = first), change and
/// delete count the fields of that name (1 = first; libmilter treats 0 as 1), a change of a field
/// that is not there adds it. Values are written after "Name: " with the milter's LF line breaks as
/// CRLF (RFC 5322 §2.2.3 folding); a value that starts with white space (SMFIP_HDR_LEADSPC) is
/// written right after the colon. Sans I/O; fields that are not touched keep their bytes.
/// </summary>
public static class MilterHeaderChanges
{
    /// <summary>The new header section; it ends with the empty line when <paramref name="headerSection"/> did.</summary>
    public static byte[] Apply(ReadOnlySpan<byte> headerSection, IEnumerable<MilterModification> modifications)
    {
        var (fields, endsWithEmptyLine) = Fields(headerSection);
        foreach (var m in modifications)
        {
            switch (m)
            {
                case MilterModification.AddHeader a:
                    fields.Add((a.Name, Field(a.Name, a.Value)));
                    break;
                case MilterModification.InsertHeader i:
                    fields.Insert(Math.Clamp(i.Index, 0, fields.Count), (i.Name, Field(i.Name, i.Value)));
                    break;
                case MilterModification.ChangeHeader c:
                    {
                        var at = Nth(fields, c.Name, c.Index);
                        if (at < 0)
                        {
                            fields.Add((c.Name, Field(c.Name, c.Value)));
                        }
                        else
                        {
                            fields[at] = (fields[at].Name, Field(fields[at].Name, c.Value));
                        }
                        break;
                    }
                case MilterModification.DeleteHeader d:
                    {
                        var at = Nth(fields, d.Name, d.Index);
                        if (at >= 0)
                        {
                            fields.RemoveAt(at);
                        }
                        break;
                    }
            }
        }
        var output = new MemoryStream(headerSection.Length + 1024);
        foreach (var (_, bytes) in fields)
        {
            output.Write(bytes);
        }
        if (endsWithEmptyLine)
        {
            output.Write("\r\n"u8);
        }
        return output.ToArray();
    }

    private static int Nth(List<(string Name, byte[] Bytes)> fields, string name, int index)
    {
        var wanted = Math.Max(index, 1);
        for (var i = 0; i < fields.Count; i++)
        {
            if (string.Equals(fields[i].Name, name, StringComparison.OrdinalIgnoreCase) && --wanted == 0)
            {
                return i;
            }
        }
        return -1;
    }

    private static byte[] Field(string name, string value)
    {
        var text = value.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\r", "", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal);
        var separator = text.Length > 0 && text[0] is ' ' or '\t' ? ":" : ": ";
        return Encoding.UTF8.GetBytes(name + separator + text + "\r\n");
    }

    /// <summary>Each field's name and raw bytes (its folded lines included, CRLF-terminated).</summary>
    private static (List<(string Name, byte[] Bytes)> Fields, bool EndsWithEmptyLine) Fields(ReadOnlySpan<byte> section)
    {
        var fields = new List<(string, byte[])>();
        var current = new List<byte>();
        string? name = null;
        var ended = false;
        while (section.Length > 0)
        {
            var lf = section.IndexOf((byte)'\n');
            var line = lf < 0 ? section : section[..(lf + 1)];
            section = section[line.Length..];
            var content = line.TrimEnd("\r\n"u8);
            if (content.Length == 0)
            {
                ended = true;
                break;
            }
            if (content[0] is (byte)' ' or (byte)'\t' && name is not null)
            {
                current.AddRange(content);
                current.AddRange("\r\n"u8);
                continue;
            }
            if (name is not null)
            {
                fields.Add((name, current.ToArray()));
                current.Clear();
            }
            var colon = content.IndexOf((byte)':');
            name = Encoding.UTF8.GetString(colon > 0 ? content[..colon] : content).TrimEnd(' ', '\t');
            current.AddRange(content);
            current.AddRange("\r\n"u8);
        }
        if (name is not null)
        {
            fields.Add((name, current.ToArray()));
        }
        return (fields, ended);
    }
}
