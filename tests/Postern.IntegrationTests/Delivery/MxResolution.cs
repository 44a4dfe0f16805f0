using System.Net;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Delivery;

namespace Postern.IntegrationTests.Delivery;

/// <summary>RFC 5321 §5.1 and RFC 7505 against a real DNS server (NSD) on loopback serving test zones.</summary>
public sealed class MxResolutionOverRealDns : IAsyncLifetime
{
    private static readonly string Zone = DnsServer.Zone("dest.test", """
        ; several preferences, two sharing one
        multi   IN MX 10 mx1.dest.test.
        multi   IN MX 20 mx2.dest.test.
        multi   IN MX 20 mx3.dest.test.
        multi   IN MX 30 mx4.dest.test.
        mx1     IN A   127.0.0.11
        mx2     IN A   127.0.0.12
        mx3     IN A   127.0.0.13
        mx3     IN AAAA ::1
        mx4     IN A   127.0.0.14
        ; RFC 7505 null MX
        nullmx  IN MX 0 .
        ; no MX: the domain's own address is the implicit MX
        aonly   IN A   127.0.0.21
        ; an MX whose host has no address at all, and one that has
        halfdead IN MX 10 nowhere.dest.test.
        halfdead IN MX 20 mx1.dest.test.
        ; a CNAME to an address
        viacname IN MX 10 alias.dest.test.
        alias   IN CNAME mx2.dest.test.
        ; an MX pointing into a zone whose lookups fail
        lame    IN MX 10 mx.broken.test.
        ; exists, but neither MX nor address
        empty   IN TXT "nothing here"
        """);

    private DnsServer _dns = null!;
    private MxResolver _resolver = null!;

    public async Task InitializeAsync()
    {
        _dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["dest.test"] = Zone, ["broken.test"] = null });
        _resolver = new MxResolver([_dns.Server], TimeSpan.FromSeconds(2));
    }

    public Task DisposeAsync()
    {
        _dns.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task PreferenceOrderWithEqualPreferencesShuffled()
    {
        var orders = new HashSet<string>();
        for (var i = 0; i < 30; i++)
        {
            var r = Assert.IsType<MxResolution.Hosts>(await _resolver.ResolveAsync("multi.dest.test"));
            Assert.False(r.Implicit);
            Assert.Equal([10, 20, 20, 30], r.List.Select(h => h.Preference));
            Assert.Equal("mx1.dest.test", r.List[0].Name);
            Assert.Equal("mx4.dest.test", r.List[3].Name);
            orders.Add(string.Join(",", r.List.Select(h => h.Name)));
        }
        // Both orders of the two preference-20 hosts turn up.
        Assert.Equal(2, orders.Count);
    }

    [Fact]
    public async Task IPv6AndIPv4AddressesAreBothUsed()
    {
        var r = Assert.IsType<MxResolution.Hosts>(await _resolver.ResolveAsync("multi.dest.test"));
        var mx3 = r.List.Single(h => h.Name == "mx3.dest.test");
        Assert.Equal([IPAddress.IPv6Loopback, IPAddress.Parse("127.0.0.13")], mx3.Addresses);
    }

    [Fact]
    public async Task NullMxMeansNoMail() =>
        Assert.IsType<MxResolution.NullMx>(await _resolver.ResolveAsync("nullmx.dest.test"));

    [Fact]
    public async Task WithoutMxTheDomainItselfIsTried()
    {
        var r = Assert.IsType<MxResolution.Hosts>(await _resolver.ResolveAsync("aonly.dest.test"));
        Assert.True(r.Implicit);
        Assert.Equal(IPAddress.Parse("127.0.0.21"), Assert.Single(Assert.Single(r.List).Addresses));
    }

    [Fact]
    public async Task AnMxWithoutAddressIsSkipped()
    {
        var r = Assert.IsType<MxResolution.Hosts>(await _resolver.ResolveAsync("halfdead.dest.test"));
        Assert.Equal("mx1.dest.test", Assert.Single(r.List).Name);
    }

    [Fact]
    public async Task CnameIsFollowed()
    {
        var r = Assert.IsType<MxResolution.Hosts>(await _resolver.ResolveAsync("viacname.dest.test"));
        Assert.Equal(IPAddress.Parse("127.0.0.12"), Assert.Single(Assert.Single(r.List).Addresses));
    }

    [Fact]
    public async Task ServfailDefersNeverBounces()
    {
        Assert.IsType<MxResolution.Temporary>(await _resolver.ResolveAsync("x.broken.test"));
        Assert.IsType<MxResolution.Temporary>(await _resolver.ResolveAsync("lame.dest.test"));
    }

    [Fact]
    public async Task NonexistentOrEmptyDomainIsPermanent()
    {
        Assert.IsType<MxResolution.NoSuchDomain>(await _resolver.ResolveAsync("nope.dest.test"));
        Assert.IsType<MxResolution.NoSuchDomain>(await _resolver.ResolveAsync("empty.dest.test"));
    }

    [Fact]
    public async Task AnUnansweringServerDefers()
    {
        // Nothing listens on this loopback port: a timeout, which must defer.
        var silent = new MxResolver(["127.0.53.254:9"], TimeSpan.FromMilliseconds(300));
        Assert.IsType<MxResolution.Temporary>(await silent.ResolveAsync("multi.dest.test"));
    }
}
