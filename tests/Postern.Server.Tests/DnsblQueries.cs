using System.Net;
using Postern.Server.Limits;

namespace Postern.Server.Tests;

/// <summary>RFC 5782: the name asked for a client, and what the answers mean.</summary>
public sealed class DnsblQueries
{
    [Fact]
    public void AnIPv4ClientIsItsOctetsReversed()
    {
        // RFC 5782 §2.1
        Assert.Equal("99.2.0.192.bl.example", DnsList.QueryName(IPAddress.Parse("192.0.2.99"), "bl.example"));
        Assert.Equal("2.0.0.127.zen.spamhaus.org", DnsList.QueryName(IPAddress.Parse("127.0.0.2"), "zen.spamhaus.org"));
        // An IPv4 client seen on a dual-stack socket is still an IPv4 client.
        Assert.Equal("99.2.0.192.bl.example", DnsList.QueryName(IPAddress.Parse("::ffff:192.0.2.99"), "bl.example"));
    }

    [Fact]
    public void AnIPv6ClientIsItsNibblesReversed()
    {
        // The example of RFC 5782 §2.4.
        Assert.Equal("b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com",
            DnsList.QueryName(IPAddress.Parse("2001:db8:1:2:3:4:567:89ab"), "ugly.example.com"));
        // All 32 nibbles, leading zeros too: ::1 is 1 and 31 zeros.
        Assert.Equal("1." + string.Concat(Enumerable.Repeat("0.", 31)) + "bl.example", DnsList.QueryName(IPAddress.IPv6Loopback, "bl.example"));
    }

    [Fact]
    public void TheZoneIsWrittenOneWay()
    {
        var list = new DnsList("ZEN.Spamhaus.org.", 2, []);
        Assert.Equal("zen.spamhaus.org", list.Zone);
        Assert.Equal(2, list.Weight);
    }

    [Fact]
    public void NoAnswerIsNotListedAndAnyLoopbackAnswerIsListed()
    {
        var list = new DnsList("bl.example", 1, []);
        Assert.IsType<ListAnswer.NotListed>(list.Classify([]));
        var listed = Assert.IsType<ListAnswer.Listed>(list.Classify([IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.0.0.4")]));
        Assert.Equal(2, listed.Codes.Count);
        Assert.IsType<ListAnswer.Listed>(list.Classify([IPAddress.Parse("127.1.2.3")]));
    }

    [Theory]
    [InlineData("127.255.255.254", "public or shared resolvers")]
    [InlineData("127.255.255.255", "too many queries")]
    [InlineData("127.255.255.252", "mistyped")]
    [InlineData("127.255.255.1", "refuses the query")]
    public void ARefusalCodeIsAFailureNotAListing(string code, string why)
    {
        // Spamhaus answers 127.255.255.x when it will not answer for the client; such a list is skipped.
        var list = new DnsList("zen.spamhaus.org", 1, []);
        var failed = Assert.IsType<ListAnswer.Failed>(list.Classify([IPAddress.Parse(code)]));
        Assert.Contains(why, failed.Reason, StringComparison.Ordinal);
        // Even beside a listing code, and whatever the filter says.
        Assert.IsType<ListAnswer.Failed>(new DnsList("zen.spamhaus.org", 1, ["127.[0..255].[0..255].[0..255]"]).Classify([IPAddress.Parse("127.0.0.2"), IPAddress.Parse(code)]));
    }

    [Theory]
    [InlineData("192.0.2.1")]
    [InlineData("10.0.0.1")]
    [InlineData("::1")]
    public void AnAnswerOutsideLoopbackIsAFailure(string answer)
    {
        // RFC 5782 §2.1: listings answer in 127.0.0.0/8; anything else is a resolver rewriting NXDOMAIN or a dead list.
        var failed = Assert.IsType<ListAnswer.Failed>(new DnsList("bl.example", 1, []).Classify([IPAddress.Parse(answer)]));
        Assert.Contains("127.0.0.0/8", failed.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TheAnswerFilterDecidesWhichCodesCount()
    {
        var zen = new DnsList("zen.spamhaus.org", 1, ["127.0.0.[2..11]"]);
        Assert.IsType<ListAnswer.Listed>(zen.Classify([IPAddress.Parse("127.0.0.2")]));
        Assert.IsType<ListAnswer.Listed>(zen.Classify([IPAddress.Parse("127.0.0.11")]));
        Assert.IsType<ListAnswer.NotListed>(zen.Classify([IPAddress.Parse("127.0.0.12")]));
        Assert.IsType<ListAnswer.NotListed>(zen.Classify([IPAddress.Parse("127.0.1.2")]));
        // Only the codes that match are reported.
        var both = Assert.IsType<ListAnswer.Listed>(zen.Classify([IPAddress.Parse("127.0.0.20"), IPAddress.Parse("127.0.0.4")]));
        Assert.Equal([IPAddress.Parse("127.0.0.4")], both.Codes);

        // DNSWL: the last octet is the trust level; 0 (none) does not count.
        var dnswl = new DnsList("list.dnswl.org", 5, ["127.0.[0..255].[1..3]"]);
        Assert.IsType<ListAnswer.Listed>(dnswl.Classify([IPAddress.Parse("127.0.15.2")]));
        Assert.IsType<ListAnswer.NotListed>(dnswl.Classify([IPAddress.Parse("127.0.15.0")]));
        Assert.IsType<ListAnswer.NotListed>(dnswl.Classify([IPAddress.Parse("127.0.0.255")]));

        // Several patterns, and lists inside brackets.
        var picky = new DnsList("bl.example", 1, ["127.0.0.2", "127.0.0.[4;6..7]"]);
        Assert.Equal([true, false, true, false, true, true, false],
            new[] { 2, 3, 4, 5, 6, 7, 8 }.Select(n => picky.Classify([IPAddress.Parse($"127.0.0.{n}")]) is ListAnswer.Listed));
    }

    [Theory]
    [InlineData("127.0.0.2", true)]
    [InlineData("127.0.0.[2..11]", true)]
    [InlineData("127.0.[0..255].[1;2;3]", true)]
    [InlineData("127.0.0.[1;3..5]", true)]
    [InlineData(" 127.0.0.2 ", true)]
    [InlineData("127.0.0", false)]
    [InlineData("127.0.0.2.1", false)]
    [InlineData("127.0.0.256", false)]
    [InlineData("127.0.0.[11..2]", false)]
    [InlineData("127.0.0.[2..]", false)]
    [InlineData("127.0.0.[2", false)]
    [InlineData("127.0.0.[]", false)]
    [InlineData("127.0.0.[[2]]", false)]
    [InlineData("127.0.0.2/32", false)]
    [InlineData("127.0.0.-2", false)]
    [InlineData("a.b.c.d", false)]
    [InlineData("", false)]
    public void AnswerPatternsAreChecked(string pattern, bool valid)
    {
        Assert.Equal(valid, DnsList.IsAnswerPattern(pattern));
        if (!valid)
        {
            Assert.Throws<ArgumentException>(() => new DnsList("bl.example", 1, [pattern]));
        }
    }
}
