using System.Net;
using Postern.MailAuth.Spf;
using Postern.Protocol.Tests.Conformance;

namespace Postern.MailAuth.Tests.Spf;

/// <summary>
/// Every expectation of the SPF files of the Rust mail-auth crate (tests/conformance/spf/mail-auth),
/// read line by line as its upstream harness does (the files are not YAML): records accumulate over the
/// whole file and a later line for the same name and type replaces the earlier one; "domain:" is the
/// HELO name; each expect: line checks the HELO identity first and, when that passes, the MAIL FROM
/// identity; names containing "_dns_error." fail with a DNS error, other unknown names are NXDOMAIN.
/// </summary>
public sealed class MailAuthSpfSuite
{
    private const string Folder = "spf/mail-auth";

    private static readonly string[] Files =
        ["a.yml", "all.yml", "basic.yml", "examples.yml", "exists.yml", "exp.yml", "include.yml", "ip.yml", "macro.yml", "mx.yml", "ptr.yml", "redirect.yml"];

    /// <summary>
    /// Where upstream's expectation contradicts RFC 7208 and the openspf suite, we keep the RFC: the
    /// test then checks the result we give, and this says why it differs.
    /// </summary>
    private static readonly Dictionary<string, (AuthResult Ours, string Why)> Deviations = new()
    {
        ["all.yml / All test #1"] = (AuthResult.PermError,
            "'v=spf1 -all ip:10.0.0.1': 'ip' is no mechanism and the term no modifier; RFC 7208 §4.6 makes a syntax error "
            + "anywhere in the record permerror, mechanisms after all included (openspf detect-errors-anywhere: "
            + "'-all moo' is permerror). Upstream skips terms it does not know."),
        ["exists.yml / Exists #2"] = (AuthResult.Fail,
            "ip6.test.org has only AAAA records; RFC 7208 §5.7 has exists: look up A records only, even for an IPv6 "
            + "client (openspf exists-ip6only). Upstream also accepts AAAA records."),
        ["macro.yml / Macro expansion 2 #2"] = (AuthResult.Fail,
            "the exists: that should match names only AAAA records; as above, RFC 7208 §5.7 looks up A records only."),
        ["basic.yml / DNS Lookup Limits #1"] = (AuthResult.PermError,
            "a:t1.org ... a:t10.org have no records (upstream's mock resolver answers NXDOMAIN too); the third such "
            + "void lookup is over the limit of 2 of RFC 7208 §4.6.4 (openspf void-over-limit). Upstream has no void limit."),
    };

    private static readonly Lazy<IReadOnlyDictionary<string, Case>> Suite = new(Load);

    public static TheoryData<string, string> Cases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var c in Suite.Value.Values)
            {
                data.Add(c.File, c.Label);
            }
            return data;
        }
    }

    [Fact]
    public void HasEveryCase()
    {
        Assert.Equal(163, Suite.Value.Count);
        Assert.All(Deviations.Keys, key => Assert.True(Suite.Value.ContainsKey(key), key));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task MailAuth(string file, string test)
    {
        var key = $"{file} / {test}";
        var c = Suite.Value[key];
        var evaluator = new SpfEvaluator(c.Zone, "localdomain.org");
        var ip = IPAddress.Parse(c.Ip);
        var outcome = await evaluator.CheckHeloAsync(ip, c.Helo);
        if (outcome.Result == AuthResult.Pass)
        {
            outcome = await evaluator.CheckMailFromAsync(ip, c.Sender, c.Helo);
        }

        var expected = Deviations.TryGetValue(key, out var deviation) ? deviation.Ours : c.Result;
        Assert.True(expected == outcome.Result,
            $"{key} (HELO {c.Helo}, MAIL FROM {c.Sender}, IP {c.Ip}): got {outcome.Result} ({outcome.Reason}), expected {expected}"
            + (deviation.Why is null ? "" : $" rather than upstream's {c.Result}: {deviation.Why}"));
        if (c.Explanation is not null)
        {
            Assert.Equal(c.Explanation, outcome.Explanation);
        }
    }

    private sealed record Case(string File, string Label, string Helo, string Sender, string Ip, AuthResult Result, string? Explanation, ZoneDns Zone);

    private static IReadOnlyDictionary<string, Case> Load()
    {
        var cases = new Dictionary<string, Case>();
        foreach (var file in Files)
        {
            var text = System.IO.File.ReadAllText(ConformanceFiles.File(Folder, file)).Replace("\r\n", "\n");
            // Upstream's mock resolver: a DNS error for these names, NXDOMAIN for every other unknown name.
            var zone = new ZoneDns { TempErrorFor = name => (name + ".").Contains("_dns_error.", StringComparison.OrdinalIgnoreCase) };
            foreach (var chunk in text.Split("---\n"))
            {
                var (name, helo, sender, ip, number) = ("", "", "", "127.0.0.1", 1);
                foreach (var raw in chunk.Split('\n'))
                {
                    var line = raw.Trim();
                    if (line.StartsWith('-'))
                    {
                        line = line[1..].Trim();
                    }
                    var colon = line.IndexOf(':');
                    if (colon < 0)
                    {
                        continue;
                    }
                    var value = line[(colon + 1)..].Trim();
                    switch (line[..colon])
                    {
                        case "name":
                            name = value;
                            break;
                        case "spf" or "exp":
                            {
                                var (owner, record) = SplitOnce(value);
                                zone[owner].Txt = [record];
                                break;
                            }
                        case "a":
                            {
                                var (owner, list) = SplitOnce(value);
                                zone[owner].A = [.. Addresses(list)];
                                break;
                            }
                        case "aaaa":
                            {
                                var (owner, list) = SplitOnce(value);
                                zone[owner].Aaaa = [.. Addresses(list)];
                                break;
                            }
                        case "ptr":
                            {
                                var (address, names) = SplitOnce(value);
                                zone[ZoneDns.ReverseName(IPAddress.Parse(address))].Ptr = [.. names.Split(',').Select(n => n.Trim())];
                                break;
                            }
                        case "mx":
                            {
                                // Upstream makes up one host per address, mx.<ip>.<pos>, preference pos + 1.
                                var (owner, list) = SplitOnce(value);
                                var hosts = new List<Dns.MxRecord>();
                                foreach (var (address, pos) in Addresses(list).Select((a, i) => (a, i)))
                                {
                                    var host = $"mx.{address}.{pos}";
                                    if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
                                    {
                                        zone[host].A = [address];
                                    }
                                    else
                                    {
                                        zone[host].Aaaa = [address];
                                    }
                                    hosts.Add(new(pos + 1, host));
                                }
                                zone[owner].Mx = hosts;
                                break;
                            }
                        case "domain":
                            helo = value;
                            break;
                        case "sender":
                            sender = value;
                            break;
                        case "ip":
                            ip = value;
                            break;
                        case "expect":
                            {
                                var space = value.IndexOf(' ');
                                var result = Result(space < 0 ? value : value[..space]);
                                var explanation = space < 0 ? null : value[(space + 1)..].Trim();
                                var label = $"{name} #{number++}";
                                cases.Add($"{file} / {label}", new Case(file, label, helo, sender, ip, result, explanation, zone.Clone()));
                                break;
                            }
                    }
                }
            }
        }
        return cases;
    }

    private static (string, string) SplitOnce(string value)
    {
        var space = value.IndexOf(' ');
        return space < 0 ? (value, "") : (value[..space], value[(space + 1)..]);
    }

    private static IEnumerable<IPAddress> Addresses(string list) => list.Split(',').Select(a => IPAddress.Parse(a.Trim()));

    private static AuthResult Result(string word) => word switch
    {
        "pass" => AuthResult.Pass,
        "fail" => AuthResult.Fail,
        "softfail" => AuthResult.SoftFail,
        "neutral" => AuthResult.Neutral,
        "none" => AuthResult.None,
        "permerror" => AuthResult.PermError,
        "temperror" => AuthResult.TempError,
        _ => throw new InvalidDataException($"result {word}"),
    };
}
