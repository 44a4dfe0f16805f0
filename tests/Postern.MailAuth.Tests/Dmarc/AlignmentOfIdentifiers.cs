using Postern.MailAuth.Dmarc;
using Postern.MailAuth.PublicSuffix;

namespace Postern.MailAuth.Tests.Dmarc;

/// <summary>
/// Identifier alignment (RFC 7489 §3.1), with OpenDMARC's test_alignment.c cases as the conformance
/// README restates them, and Stalwart mail-auth's strict/relaxed cases.
/// </summary>
public sealed class AlignmentOfIdentifiers
{
    private static readonly PublicSuffixList List = PublicSuffixList.Embedded;

    [Theory]
    [InlineData("a.b.c.bcx.com", "bcx.com", AlignmentMode.Relaxed, true)]
    [InlineData("a.b.c.edu.ar", "edr.au", AlignmentMode.Strict, false)]
    [InlineData("oooo.com", "ooo.com", AlignmentMode.Strict, false)]
    [InlineData("oooo.com", "ooo.com", AlignmentMode.Relaxed, false)]
    [InlineData("a.foo.com", "b.foo.com", AlignmentMode.Relaxed, true)]
    [InlineData(".mac.com.", "mac.com", AlignmentMode.Strict, true)]
    [InlineData("....mac.com....", "mac.com", AlignmentMode.Strict, true)]
    [InlineData("mac...com", "..com", AlignmentMode.Strict, false)]
    [InlineData("a.b.com", "b.com", AlignmentMode.Relaxed, true)]
    [InlineData("b.com", "a.b.com", AlignmentMode.Relaxed, true)]
    [InlineData("a.b.de", "a.b.de", AlignmentMode.Strict, true)]
    public void LikeOpenDmarc(string a, string b, AlignmentMode mode, bool aligned) =>
        Assert.Equal(aligned, DmarcAlignment.IsAligned(a, b, mode, List));

    [Theory]
    [InlineData("example.org", "example.org", AlignmentMode.Strict, true)]
    [InlineData("subdomain.example.org", "example.org", AlignmentMode.Relaxed, true)]
    [InlineData("subdomain.example.org", "example.org", AlignmentMode.Strict, false)]
    [InlineData("EXAMPLE.org", "example.ORG", AlignmentMode.Strict, true)]
    public void LikeMailAuth(string a, string b, AlignmentMode mode, bool aligned) =>
        Assert.Equal(aligned, DmarcAlignment.IsAligned(a, b, mode, List));

    [Theory]
    // Private-section suffixes: different customers of one host are different organizations.
    [InlineData("alice.github.io", "bob.github.io", false)]
    [InlineData("www.alice.github.io", "alice.github.io", true)]
    // A public suffix is its own Organizational Domain: it aligns with itself only.
    [InlineData("co.uk", "co.uk", true)]
    [InlineData("a.co.uk", "co.uk", false)]
    [InlineData("a.co.uk", "b.co.uk", false)]
    // Unlisted top-level names: the implicit "*" rule.
    [InlineData("a.mail.example", "b.mail.example", true)]
    // IDN in either form.
    [InlineData("mail.食狮.公司.cn", "xn--85x722f.xn--55qx5d.cn", true)]
    // Not names at all.
    [InlineData("[192.0.2.1]", "[192.0.2.1]", false)]
    [InlineData("", "", false)]
    [InlineData(null, "example.com", false)]
    public void Relaxed(string? a, string b, bool aligned) =>
        Assert.Equal(aligned, DmarcAlignment.IsAligned(a, b, AlignmentMode.Relaxed, List));

    [Fact]
    public void IcannOnlyListJoinsPrivateSuffixCustomers()
    {
        var icann = PublicSuffixList.LoadEmbedded(PublicSuffixSections.Icann);
        Assert.True(DmarcAlignment.IsAligned("alice.github.io", "bob.github.io", AlignmentMode.Relaxed, icann));
    }
}
