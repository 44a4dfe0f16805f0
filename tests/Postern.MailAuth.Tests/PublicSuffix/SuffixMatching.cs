using Postern.MailAuth.PublicSuffix;

namespace Postern.MailAuth.Tests.PublicSuffix;

/// <summary>The matcher's rules beyond tests.txt: sections, wildcards, exceptions, IDN, loading a list from configuration.</summary>
public sealed class SuffixMatching
{
    private static readonly PublicSuffixList List = PublicSuffixList.Embedded;

    [Theory]
    [InlineData("www.example.co.uk", "co.uk")]
    [InlineData("co.uk", "co.uk")]
    [InlineData("a.example", "example")]
    [InlineData("a.b.c.mm", "c.mm")]
    [InlineData("www.ck", "ck")]
    [InlineData("www.www.ck", "ck")]
    [InlineData("b.test.ck", "test.ck")]
    [InlineData("www.city.kobe.jp", "kobe.jp")]
    [InlineData("alice.github.io", "github.io")]
    [InlineData("WWW.Example.COM", "com")]
    [InlineData("www.食狮.公司.cn", "公司.cn")]
    [InlineData("www.xn--85x722f.xn--55qx5d.cn", "xn--55qx5d.cn")]
    public void PublicSuffixOf(string domain, string suffix) => Assert.Equal(suffix, List.PublicSuffix(domain));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(".com")]
    [InlineData("example.com.")]
    [InlineData("a..example.com")]
    public void NoAnswerForMalformedNames(string? domain)
    {
        Assert.Null(List.PublicSuffix(domain));
        Assert.Null(List.OrganizationalDomain(domain));
        Assert.False(List.IsPublicSuffix(domain));
    }

    [Theory]
    [InlineData("com", true)]
    [InlineData("github.io", true)]
    [InlineData("c.mm", true)]
    [InlineData("example", true)]
    [InlineData("example.com", false)]
    [InlineData("city.kobe.jp", false)]
    public void IsPublicSuffix(string domain, bool expected) => Assert.Equal(expected, List.IsPublicSuffix(domain));

    // OpenDMARC libopendmarc/tests/test_tld.c, restated in the conformance README (section 3).
    [Theory]
    [InlineData("a.b.c.bcx.com", "bcx.com")]
    [InlineData("a.b.c.educ.ar", "educ.ar")]
    [InlineData("a.b.c.xn--mgba3a4f16a.ir", "c.xn--mgba3a4f16a.ir")]
    [InlineData("a.b.c.ایران.ir", "c.ایران.ir")]
    public void OrganizationalDomainLikeOpenDmarc(string domain, string organizational) =>
        Assert.Equal(organizational, List.OrganizationalDomain(domain));

    [Fact]
    public void PrivateSectionCountsByDefaultAndCanBeLeftOut()
    {
        // github.io is in the PRIVATE section: with it, each user's site is its own organization.
        Assert.Equal("alice.github.io", List.OrganizationalDomain("www.alice.github.io"));
        Assert.Null(List.OrganizationalDomain("github.io"));
        var icann = PublicSuffixList.LoadEmbedded(PublicSuffixSections.Icann);
        Assert.Equal("github.io", icann.OrganizationalDomain("www.alice.github.io"));
        Assert.Equal("io", icann.PublicSuffix("alice.github.io"));
    }

    [Fact]
    public void ParsesAListGivenAtRunTime()
    {
        var list = PublicSuffixList.Parse(new StringReader("""
            // ===BEGIN ICANN DOMAINS===
            test
            *.wild.test
            !keep.wild.test
            deep.a.b.test   trailing words are ignored
            // ===END ICANN DOMAINS===
            // ===BEGIN PRIVATE DOMAINS===
            hosting.test
            // ===END PRIVATE DOMAINS===
            """));
        Assert.Equal(5, list.RuleCount);
        Assert.Equal("x.wild.test", list.PublicSuffix("y.x.wild.test"));
        Assert.Equal("keep.wild.test", list.OrganizationalDomain("www.keep.wild.test"));
        Assert.Equal("deep.a.b.test", list.PublicSuffix("x.deep.a.b.test"));
        Assert.Equal("b.test", list.OrganizationalDomain("x.a.b.test"));
        Assert.Equal("me.hosting.test", list.OrganizationalDomain("www.me.hosting.test"));

        var icannOnly = PublicSuffixList.Parse(new StringReader("// ===BEGIN ICANN DOMAINS===\ntest\n// ===BEGIN PRIVATE DOMAINS===\nhosting.test\n"), PublicSuffixSections.Icann);
        Assert.Equal("hosting.test", icannOnly.OrganizationalDomain("www.me.hosting.test"));
    }

    [Fact]
    public void LoadsAFileNamedInConfiguration()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "// a list\ncom\n*.jp\n");
            var list = PublicSuffixList.Load(path);
            Assert.Equal("example.co.jp", list.OrganizationalDomain("www.example.co.jp"));
            File.WriteAllText(path, "// nothing but comments\n\n");
            Assert.Throws<InvalidDataException>(() => PublicSuffixList.Load(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void IsFast()
    {
        // A DMARC check asks a few times per message; 200,000 answers take a fraction of a second.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 200_000; i++)
        {
            Assert.NotNull(List.OrganizationalDomain("mail.a.b.example.co.uk"));
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"200,000 look-ups took {watch.Elapsed}");
    }
}
