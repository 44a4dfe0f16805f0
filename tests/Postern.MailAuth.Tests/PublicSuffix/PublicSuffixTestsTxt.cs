using Postern.MailAuth.PublicSuffix;
using Postern.Protocol.Tests.Conformance;

namespace Postern.MailAuth.Tests.PublicSuffix;

/// <summary>
/// The list's own tests (dmarc/publicsuffix/tests.txt, CC0): "&lt;input&gt; &lt;registrable domain&gt;" per
/// line, "null" for a null input or no registrable domain; "//" lines are comments, commented-out cases
/// stay inactive. Run against the embedded list, one test row per line.
/// </summary>
public sealed class PublicSuffixTestsTxt
{
    private static readonly string TestsFile = ConformanceFiles.File("dmarc", "publicsuffix", "tests.txt");

    public static TheoryData<int, string?, string?> Cases()
    {
        // A missing file throws here, which fails the theory rather than skipping it.
        var data = new TheoryData<int, string?, string?>();
        var number = 0;
        foreach (var line in File.ReadAllLines(TestsFile))
        {
            number++;
            var text = line.Trim();
            if (text.Length == 0 || text.StartsWith("//", StringComparison.Ordinal))
            {
                continue;
            }
            var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, parts.Length);
            data.Add(number, parts[0] == "null" ? null : parts[0], parts[1] == "null" ? null : parts[1]);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RegistrableDomain(int line, string? input, string? expected) =>
        Assert.True(expected == PublicSuffixList.Embedded.OrganizationalDomain(input),
            $"tests.txt line {line}: {input ?? "null"} should give {expected ?? "null"}, gave {PublicSuffixList.Embedded.OrganizationalDomain(input) ?? "null"}");

    [Fact]
    public void EveryActiveLineIsACase()
    {
        // 78 active lines in the copy of 2026-08-19; a harness that silently dropped some would pass fewer.
        Assert.Equal(78, Cases().Count());
    }
}
