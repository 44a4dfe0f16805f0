using System.Globalization;
using System.Net;
using System.Text;

namespace Postern.Server.Limits;

/// <summary>What one DNS list said about one client (RFC 5782), as a closed set of outcomes.</summary>
public abstract record ListAnswer
{
    /// <summary>The client is on the list; <paramref name="Codes"/> are the answers that counted.</summary>
    public sealed record Listed(IReadOnlyList<IPAddress> Codes) : ListAnswer;

    /// <summary>NXDOMAIN, no A record, or only answers the list's filter does not count.</summary>
    public sealed record NotListed : ListAnswer;

    /// <summary>No usable answer (timeout, SERVFAIL, a refusal code, an answer outside 127.0.0.0/8): the list is skipped.</summary>
    public sealed record Failed(string Reason) : ListAnswer;
}

/// <summary>
/// One DNS block or allow list as configured: its zone, its weight and which answers count
/// (Postfix's <c>postscreen_dnsbl_sites</c> entry <c>zone=127.0.0.[2..11]*weight</c>). Builds the
/// query name for a client (RFC 5782 §2.1 and §2.4) and tells what the answer means.
/// </summary>
public sealed class DnsList
{
    // RFC 5782 §2.1: a list answers with an address in 127.0.0.0/8. Anything else comes from a
    // resolver that rewrites NXDOMAIN, or a list that is gone and now answers for everything.
    private static readonly IPNetwork Loopback = IPNetwork.Parse("127.0.0.0/8");

    // Spamhaus (and lists that copied it) answer 127.255.255.x when they refuse the query rather
    // than list the client: such an answer says nothing about the client.
    private static readonly IPNetwork RefusalCodes = IPNetwork.Parse("127.255.255.0/24");

    private readonly List<AnswerPattern> _answers;

    public DnsList(string zone, int weight, IReadOnlyList<string> answers)
    {
        Zone = zone.TrimEnd('.').ToLowerInvariant();
        Weight = weight;
        _answers = answers.Select(a => AnswerPattern.TryParse(a, out var p) ? p : throw new ArgumentException($"'{a}' is not an answer pattern", nameof(answers))).ToList();
    }

    public string Zone { get; }

    public int Weight { get; }

    /// <summary>
    /// The name to look up: an IPv4 address's octets reversed (RFC 5782 §2.1: 192.0.2.99 in
    /// bl.example is <c>99.2.0.192.bl.example</c>), an IPv6 address's 32 nibbles reversed (§2.4, as
    /// in ip6.arpa). An IPv4-mapped IPv6 address is looked up as the IPv4 address it is.
    /// </summary>
    public static string QueryName(IPAddress ip, string zone)
    {
        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }
        Span<byte> bytes = stackalloc byte[16];
        ip.TryWriteBytes(bytes, out var length);
        var name = new StringBuilder((length * 4) + zone.Length);
        for (var i = length - 1; i >= 0; i--)
        {
            if (length == 4)
            {
                name.Append(bytes[i].ToString(CultureInfo.InvariantCulture)).Append('.');
            }
            else
            {
                name.Append(Hex(bytes[i] & 0xf)).Append('.').Append(Hex(bytes[i] >> 4)).Append('.');
            }
        }
        return name.Append(zone).ToString();
    }

    private static char Hex(int nibble) => (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);

    /// <summary>What the A records found for the client's name mean (empty: NXDOMAIN or no data).</summary>
    public ListAnswer Classify(IReadOnlyList<IPAddress> answers)
    {
        foreach (var a in answers)
        {
            if (a.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || !Loopback.Contains(a))
            {
                return new ListAnswer.Failed($"answered {a}, which is not in 127.0.0.0/8 (a resolver that rewrites NXDOMAIN, or a list that no longer works)");
            }
            if (RefusalCodes.Contains(a))
            {
                return new ListAnswer.Failed(ExplainRefusal(a));
            }
        }
        var counted = _answers.Count == 0 ? answers : answers.Where(a => _answers.Any(p => p.Matches(a))).ToList();
        return counted.Count > 0 ? new ListAnswer.Listed(counted) : new ListAnswer.NotListed();
    }

    private static string ExplainRefusal(IPAddress code) => code.GetAddressBytes()[3] switch
    {
        252 => $"answered {code}: the list says its name is mistyped",
        254 => $"answered {code}: the list refuses queries from public or shared resolvers; use a resolver of your own (Dns.Servers)",
        255 => $"answered {code}: the list refuses the query, too many queries from this resolver",
        _ => $"answered {code}: the list refuses the query",
    };

    /// <summary>True when <paramref name="text"/> is an answer pattern (for validation).</summary>
    public static bool IsAnswerPattern(string text) => AnswerPattern.TryParse(text, out _);

    /// <summary>
    /// Which answers count, in Postfix's form: four dotted parts, each a number (<c>2</c>) or a
    /// bracketed list of numbers and ranges (<c>[2..11]</c>, <c>[1;3;5..7]</c>): <c>127.0.0.[2..11]</c>.
    /// </summary>
    private sealed class AnswerPattern
    {
        private readonly (int Low, int High)[][] _octets;

        private AnswerPattern((int, int)[][] octets) => _octets = octets;

        public bool Matches(IPAddress a)
        {
            var bytes = a.GetAddressBytes();
            if (bytes.Length != 4)
            {
                return false;
            }
            for (var i = 0; i < 4; i++)
            {
                if (!_octets[i].Any(r => bytes[i] >= r.Low && bytes[i] <= r.High))
                {
                    return false;
                }
            }
            return true;
        }

        public static bool TryParse(string text, out AnswerPattern pattern)
        {
            pattern = null!;
            var parts = SplitOctets(text.Trim());
            if (parts is not { Count: 4 })
            {
                return false;
            }
            var octets = new (int, int)[4][];
            for (var i = 0; i < 4; i++)
            {
                var part = parts[i];
                if (part.StartsWith('[') && part.EndsWith(']') && part.Length > 2)
                {
                    var ranges = new List<(int, int)>();
                    foreach (var item in part[1..^1].Split(';'))
                    {
                        var bounds = item.Split("..");
                        if (bounds.Length > 2 || !TryOctet(bounds[0], out var low))
                        {
                            return false;
                        }
                        var high = low;
                        if (bounds.Length == 2 && (!TryOctet(bounds[1], out high) || high < low))
                        {
                            return false;
                        }
                        ranges.Add((low, high));
                    }
                    octets[i] = [.. ranges];
                }
                else if (TryOctet(part, out var value))
                {
                    octets[i] = [(value, value)];
                }
                else
                {
                    return false;
                }
            }
            pattern = new AnswerPattern(octets);
            return true;
        }

        /// <summary>Splits on the dots between octets, not on the ".." inside brackets.</summary>
        private static List<string>? SplitOctets(string text)
        {
            var parts = new List<string>();
            var start = 0;
            var inBrackets = false;
            for (var i = 0; i < text.Length; i++)
            {
                switch (text[i])
                {
                    case '[' when !inBrackets: inBrackets = true; break;
                    case ']' when inBrackets: inBrackets = false; break;
                    case '[' or ']': return null;
                    case '.' when !inBrackets:
                        parts.Add(text[start..i]);
                        start = i + 1;
                        break;
                }
            }
            if (inBrackets)
            {
                return null;
            }
            parts.Add(text[start..]);
            return parts;
        }

        private static bool TryOctet(string s, out int value) =>
            int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value <= 255 && s.Length <= 3;
    }
}
