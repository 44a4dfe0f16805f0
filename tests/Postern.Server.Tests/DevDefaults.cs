using System.Collections;
using System.Net;
using Postern.Server.Configuration;

namespace Postern.Server.Tests;

/// <summary>SPEC §1 `--dev`: works on a fresh machine with no file written by hand, and trusts no network.</summary>
public sealed class DevDefaults
{
    private static string NewDataPath() => Path.Combine(Path.GetTempPath(), "postern-config-tests", Guid.NewGuid().ToString("N"), "data");

    [Fact]
    public void ThreeLoopbackListenersOnTheDevPorts()
    {
        var o = ConfigurationLoader.Load(null, dev: true, new Hashtable { ["POSTERN_DATA"] = NewDataPath() });
        Assert.Equal(3, o.Listeners.Count);
        Assert.Equal(
            [("mx", 2525, ListenerRole.Mx), ("submission", 2587, ListenerRole.Submission), ("submissions", 2465, ListenerRole.Submissions)],
            o.Listeners.Select(l => (l.Name, IPEndPoint.Parse(l.Endpoint).Port, l.Role)).ToList());
        Assert.All(o.Listeners, l => Assert.Equal(IPAddress.Loopback, IPEndPoint.Parse(l.Endpoint).Address));
    }

    [Fact]
    public void LocalDomainsAndAGeneratedCertificate()
    {
        var o = ConfigurationLoader.Load(null, dev: true, new Hashtable { ["POSTERN_DATA"] = NewDataPath() });
        Assert.Equal(["localhost", "example.test"], o.Domains);
        Assert.True(o.Tls.Generate);
        Assert.False(string.IsNullOrWhiteSpace(o.Hostname));
    }

    [Fact]
    public void NoNetworkIsTrusted()
    {
        var o = ConfigurationLoader.Load(null, dev: true, new Hashtable { ["POSTERN_DATA"] = NewDataPath() });
        Assert.Empty(o.Relay.TrustedNetworks);
    }

    [Fact]
    public void PosternDataSetsTheDataDirectory()
    {
        var data = NewDataPath();
        var o = ConfigurationLoader.Load(null, dev: true, new Hashtable { ["POSTERN_DATA"] = data });
        Assert.Equal(data, o.DataDirectory);
        Assert.Equal(Path.Combine(data, "passwd"), o.ResolvePath(o.Accounts.PasswdFile));
    }

    [Fact]
    public void WithoutPosternDataTheDataIsInTheCurrentDirectory()
    {
        var o = ConfigurationLoader.Load(null, dev: true, new Hashtable());
        Assert.Equal(Path.Combine(Directory.GetCurrentDirectory(), "postern-data"), o.DataDirectory);
    }

    [Fact]
    public void WithoutDevNothingIsInvented()
    {
        // SPEC §1: outside --dev a missing required setting is a clear error, each one named.
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(null, dev: false, new Hashtable { ["POSTERN_DATA"] = NewDataPath() }));
        foreach (var key in new[] { "Hostname:", "DataDirectory:", "Domains:", "Listeners:", "Tls.CertificatePath:", "Tls.KeyPath:" })
        {
            Assert.Contains(key, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ListsFromAFileOnTopOfDevMergeByPosition()
    {
        // As docs/configuration.md warns: one listener in the file replaces the first dev listener only.
        var file = RepositoryFiles.WriteConfig("""{ "Listeners": [ { "Endpoint": "127.0.0.1:3525" } ] }""");
        var o = ConfigurationLoader.Load(file, dev: true, new Hashtable { ["POSTERN_DATA"] = NewDataPath() });
        Assert.Equal(["127.0.0.1:3525", "127.0.0.1:2587", "127.0.0.1:2465"], o.Listeners.Select(l => l.Endpoint));
    }

    [Fact]
    public void AFileOnTopOfDevChangesOnlyWhatItNames()
    {
        var file = RepositoryFiles.WriteConfig("""{ "Hostname": "dev.example.test", "Limits": { "MaxRecipients": 5 } }""");
        var o = ConfigurationLoader.Load(file, dev: true, new Hashtable { ["POSTERN_DATA"] = NewDataPath() });
        Assert.Equal("dev.example.test", o.Hostname);
        Assert.Equal(5, o.Limits.MaxRecipients);
        Assert.Equal(3, o.Listeners.Count);
        Assert.Equal(["localhost", "example.test"], o.Domains);
    }
}
