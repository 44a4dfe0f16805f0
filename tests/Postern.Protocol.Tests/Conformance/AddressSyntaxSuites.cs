using System.Text;
using System.Text.Json;
using System.Xml.Linq;
using Postern.Protocol.Addresses;

namespace Postern.Protocol.Tests.Conformance;

/// <summary>
/// The public address-syntax suites against the RFC 5321 Mailbox parser used for MAIL FROM and
/// RCPT TO. isemail (Dominic Sayers): accept VALID, DNSWARN and RFC5321, refuse CFWS, DEPREC,
/// RFC5322 and ERR (conformance README). JSON-Schema-Test-Suite email/idn-email: overrides below
/// where the envelope is stricter than JSON Schema's reading, each with its reason.
/// </summary>
public sealed class AddressSyntaxSuites
{
    private static readonly HashSet<string> Accepted = ["ISEMAIL_VALID_CATEGORY", "ISEMAIL_DNSWARN", "ISEMAIL_RFC5321"];

    public static TheoryData<string, string, string> IsEmailCases()
    {
        var data = new TheoryData<string, string, string>();
        var doc = XDocument.Load(ConformanceFiles.File("address-syntax", "isemail", "tests.xml"));
        foreach (var t in doc.Descendants("test"))
        {
            var address = Unsymbol(t.Element("address")?.Value ?? "");
            data.Add(t.Attribute("id")!.Value, address, t.Element("category")!.Value);
        }
        return data;
    }

    // XML cannot hold control characters; the suite writes them as U+2400 + n.
    private static string Unsymbol(string s) =>
        new(s.Select(c => c is >= '\u2400' and <= '\u241f' ? (char)(c - 0x2400) : c).ToArray());

    [Theory]
    [MemberData(nameof(IsEmailCases))]
    public void IsEmail(string id, string address, string category)
    {
        var ok = AddressParser.TryParseMailbox(address, allowUtf8: false, out _) == AddressError.None;
        Assert.True(ok == Accepted.Contains(category), $"case {id} {Escape(address)} ({category}): parser {(ok ? "accepted" : "refused")} it");
    }

    /// <summary>Where Postern's envelope parser knowingly differs from the JSON Schema suite, and why.</summary>
    private static readonly Dictionary<string, (bool Valid, string Why)> Overrides = new()
    {
        // RFC 5321 §4.1.2 Mailbox requires a domain with at least... no: a single label is a valid
        // Domain in RFC 5321's grammar, so nothing to override there. Overrides are added only with a reason.
    };

    public static TheoryData<string, string, bool> JsonSchemaCases()
    {
        var data = new TheoryData<string, string, bool>();
        foreach (var file in new[] { "email.json", "idn-email.json" })
        {
            using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(ConformanceFiles.File("address-syntax", "json-schema-test-suite", file)));
            foreach (var group in doc.RootElement.EnumerateArray())
            {
                foreach (var test in group.GetProperty("tests").EnumerateArray())
                {
                    if (test.GetProperty("data").ValueKind != JsonValueKind.String)
                    {
                        continue; // the "ignore non-strings" rule of JSON Schema, not about addresses
                    }
                    data.Add($"{file}: {test.GetProperty("description").GetString()}", test.GetProperty("data").GetString()!, test.GetProperty("valid").GetBoolean());
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(JsonSchemaCases))]
    public void JsonSchemaSuite(string description, string address, bool valid)
    {
        var expected = Overrides.TryGetValue(description, out var o) ? o.Valid : valid;
        var ok = AddressParser.TryParseMailbox(address, allowUtf8: description.StartsWith("idn-", StringComparison.Ordinal), out _) == AddressError.None;
        Assert.True(ok == expected, $"{description}: {Escape(address)}: parser {(ok ? "accepted" : "refused")} it");
    }

    private static string Escape(string s)
    {
        var sb = new StringBuilder();
        foreach (var c in s)
        {
            sb.Append(c < ' ' || c == 127 ? $"\\x{(int)c:x2}" : c.ToString());
        }
        return sb.ToString();
    }
}
