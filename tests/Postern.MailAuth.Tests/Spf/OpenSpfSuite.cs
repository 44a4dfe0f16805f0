using System.Net;
using Postern.MailAuth.Spf;
using Postern.Protocol.Tests.Conformance;
using YamlDotNet.RepresentationModel;

namespace Postern.MailAuth.Tests.Spf;

/// <summary>
/// Every case of the openspf RFC 7208 suite (tests/conformance/spf/openspf/rfc7208-tests.yml, read
/// as its README says): each YAML document's zonedata becomes a <see cref="ZoneDns"/> of its own, and
/// each test runs check_host() for the MAIL FROM domain (or the HELO name for an empty mailfrom), and
/// must give one of the accepted results and, where given, the explanation.
/// </summary>
public sealed class OpenSpfSuite
{
    private const string File = "spf/openspf/rfc7208-tests.yml";

    // The one place we read a case differently, and why.
    private static readonly Dictionary<string, string> ExplanationIgnoringCase = new()
    {
        // pyspf writes the nibbles of %{i} for IPv6 in upper case; RFC 7208 §7.4 shows them in lower
        // case, as we do. Hex digits have no case in DNS, so only the spelling of the text differs.
        ["Macro expansion rules / v-macro-ip6"] = "case of the IPv6 nibbles of %{ir}",
    };

    private static readonly Lazy<IReadOnlyDictionary<string, Case>> Suite = new(Load);

    public static TheoryData<string, string> Cases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var c in Suite.Value.Values)
            {
                data.Add(c.Document, c.Name);
            }
            return data;
        }
    }

    [Fact]
    public void HasEveryCase() => Assert.Equal(203, Suite.Value.Count);

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Rfc7208(string document, string test)
    {
        var key = $"{document} / {test}";
        var c = Suite.Value[key];
        var evaluator = new SpfEvaluator(c.Zone, "receiver.example");
        var ip = IPAddress.Parse(c.Host);
        var outcome = await evaluator.CheckMailFromAsync(ip, c.MailFrom, c.Helo);

        Assert.True(c.Results.Contains(outcome.Result),
            $"{key}: got {outcome.Result} ({outcome.Reason}), expected {string.Join(" or ", c.Results)}");
        if (c.Explanation is null)
        {
            return;
        }
        Assert.Equal(AuthResult.Fail, outcome.Result);
        if (c.Explanation == "DEFAULT")
        {
            // The suite's word for "not from an exp= record": the receiver's own text.
            var mapped = ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;
            Assert.Equal(SpfEvaluator.DefaultExplanation(SpfDomainName.NormalizeIdentity(outcome.Domain)!, mapped), outcome.Explanation);
        }
        else if (ExplanationIgnoringCase.ContainsKey(key))
        {
            Assert.Equal(c.Explanation, outcome.Explanation, ignoreCase: true);
        }
        else
        {
            Assert.Equal(c.Explanation, outcome.Explanation);
        }
    }

    private sealed record Case(string Document, string Name, string Helo, string Host, string MailFrom, AuthResult[] Results, string? Explanation, ZoneDns Zone);

    private static IReadOnlyDictionary<string, Case> Load()
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(ConformanceFiles.File(File.Split('/'))))
        {
            yaml.Load(reader);
        }
        var cases = new Dictionary<string, Case>();
        foreach (var document in yaml.Documents)
        {
            var root = (YamlMappingNode)document.RootNode;
            var description = Scalar(root, "description")!;
            var zone = Zone((YamlMappingNode)root.Children[new YamlScalarNode("zonedata")]);
            foreach (var (nameNode, caseNode) in (YamlMappingNode)root.Children[new YamlScalarNode("tests")])
            {
                var test = (YamlMappingNode)caseNode;
                var name = ((YamlScalarNode)nameNode).Value!;
                var results = test.Children[new YamlScalarNode("result")] switch
                {
                    YamlSequenceNode list => list.Select(r => Result(((YamlScalarNode)r).Value!)).ToArray(),
                    var one => [Result(((YamlScalarNode)one).Value!)],
                };
                cases.Add($"{description} / {name}", new Case(description, name, Scalar(test, "helo") ?? "", Scalar(test, "host")!,
                    Scalar(test, "mailfrom") ?? "", results, Scalar(test, "explanation"), zone));
            }
        }
        return cases;
    }

    // zonedata: name -> list of { TYPE: value } or the bare word TIMEOUT. SPF records stand for TXT
    // records at names that have no TXT entry at all (not even "TXT: NONE"), as the suite intends.
    private static ZoneDns Zone(YamlMappingNode zonedata)
    {
        var zone = new ZoneDns();
        foreach (var (nameNode, recordsNode) in zonedata)
        {
            var node = zone[((YamlScalarNode)nameNode).Value!];
            var spf = new List<string>();
            var hasTxt = false;
            foreach (var item in (YamlSequenceNode)recordsNode)
            {
                if (item is YamlScalarNode { Value: "TIMEOUT" })
                {
                    node.Timeout = true;
                    continue;
                }
                var (typeNode, value) = ((YamlMappingNode)item).Children.Single();
                switch (((YamlScalarNode)typeNode).Value)
                {
                    case "SPF":
                        if (Text(value) is { } spfText)
                        {
                            spf.Add(spfText);
                        }
                        break;
                    case "TXT":
                        hasTxt = true;
                        if (Text(value) is { } txt)
                        {
                            node.Txt.Add(txt);
                        }
                        break;
                    case "A":
                        node.A.Add(IPAddress.Parse(((YamlScalarNode)value).Value!));
                        break;
                    case "AAAA":
                        node.Aaaa.Add(IPAddress.Parse(((YamlScalarNode)value).Value!));
                        break;
                    case "MX":
                        var mx = (YamlSequenceNode)value;
                        node.Mx.Add(new(int.Parse(((YamlScalarNode)mx[0]).Value!), ((YamlScalarNode)mx[1]).Value!.TrimEnd('.')));
                        break;
                    case "PTR":
                        node.Ptr.Add(((YamlScalarNode)value).Value!);
                        break;
                    case "CNAME":
                        node.Cname = ((YamlScalarNode)value).Value!;
                        break;
                    case var other:
                        throw new InvalidDataException($"record type {other}");
                }
            }
            if (!hasTxt)
            {
                node.Txt.AddRange(spf);
            }
        }
        return zone;
    }

    // One TXT record: a string, or a list of character-strings joined without separator; NONE is no record.
    private static string? Text(YamlNode value) => value switch
    {
        YamlScalarNode { Value: "NONE" } => null,
        YamlScalarNode scalar => scalar.Value ?? "",
        YamlSequenceNode strings => string.Concat(strings.Select(s => ((YamlScalarNode)s).Value)),
        _ => throw new InvalidDataException($"TXT value {value}"),
    };

    private static string? Scalar(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var node) ? ((YamlScalarNode)node).Value : null;

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
