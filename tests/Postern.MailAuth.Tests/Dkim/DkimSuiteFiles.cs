using Postern.MailAuth.Dns;
using Postern.Protocol.Tests.Conformance;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>Reading the DKIM suites of tests/conformance as their README describes.</summary>
internal static class DkimSuiteFiles
{
    public static string Path(params string[] parts) => ConformanceFiles.File(["dkim", .. parts]);

    /// <summary>The suites keep LF line endings; their upstream harnesses verify with CRLF.</summary>
    public static byte[] Crlf(ReadOnlySpan<byte> lf)
    {
        var output = new List<byte>(lf.Length + lf.Length / 40);
        for (var i = 0; i < lf.Length; i++)
        {
            if (lf[i] == '\n' && (i == 0 || lf[i - 1] != '\r'))
            {
                output.Add((byte)'\r');
            }
            output.Add(lf[i]);
        }
        return [.. output];
    }

    /// <summary>dkim/mail-dkim/FAKE_DNS.dat: "name value" lines; NXDOMAIN, timeouts and SERVFAIL spelt out.</summary>
    public static DkimTestDns MailDkimDns()
    {
        var dns = new DkimTestDns();
        foreach (var line in File.ReadAllLines(Path("mail-dkim", "FAKE_DNS.dat")))
        {
            if (line.TrimStart().StartsWith('#') || string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            var split = line.IndexOfAny([' ', '\t']);
            var name = line[..split];
            var value = line[split..].Trim();
            switch (value)
            {
                case "NXDOMAIN":
                    dns.Set(name, DnsAnswer<string>.NxDomain);
                    break;
                case "~~Query timed out~~" or "~~SERVFAIL~~":
                    dns.Set(name, DnsAnswer<string>.TempError);
                    break;
                case "\"\"":
                    dns.Add(name, "");
                    break;
                default:
                    dns.Add(name, value);
                    break;
            }
        }
        return dns;
    }
}
