using System.Collections;
using Postern.Server.Configuration;

namespace Postern.Server.Tests;

/// <summary>SPEC §2: every key can be overridden by POSTERN_ + the key path joined with __.</summary>
public sealed class EnvironmentOverrides
{
    private static PosternOptions Load(string json, Hashtable environment) =>
        ConfigurationLoader.Load(RepositoryFiles.WriteConfig(json), dev: false, environment);

    [Fact]
    public void ANestedKeyIsOverridden()
    {
        var o = Load(RepositoryFiles.ValidConfig, new Hashtable { ["POSTERN_Limits__MaxMessageSize"] = "1048576" });
        Assert.Equal(1_048_576, o.Limits.MaxMessageSize);
    }

    [Fact]
    public void AListElementIsOverriddenByIndex()
    {
        var o = Load(RepositoryFiles.ValidConfig, new Hashtable
        {
            ["POSTERN_Listeners__0__Endpoint"] = "127.0.0.1:2525",
            ["POSTERN_Domains__1"] = "example.org",
        });
        Assert.Equal("127.0.0.1:2525", o.Listeners[0].Endpoint);
        Assert.Equal("192.0.2.1:587", o.Listeners[1].Endpoint);
        Assert.Equal(["example.com", "example.org"], o.Domains);
    }

    [Fact]
    public void TheEnvironmentWinsOverTheFile()
    {
        var o = Load(RepositoryFiles.ValidConfig, new Hashtable
        {
            ["POSTERN_Hostname"] = "mx2.example.com",
            ["POSTERN_Limits__CommandTimeout"] = "00:01:00",
        });
        Assert.Equal("mx2.example.com", o.Hostname);
        Assert.Equal(TimeSpan.FromMinutes(1), o.Limits.CommandTimeout);
    }

    [Fact]
    public void TheEnvironmentCanSupplyARequiredKeyTheFileLacks()
    {
        var withoutHostname = RepositoryFiles.ValidConfig.Replace("\"Hostname\": \"mail.example.com\",", "", StringComparison.Ordinal);
        Assert.Throws<ConfigurationException>(() => Load(withoutHostname, new Hashtable()));
        var o = Load(withoutHostname, new Hashtable { ["POSTERN_Hostname"] = "mail.example.com" });
        Assert.Equal("mail.example.com", o.Hostname);
    }

    [Fact]
    public void AnAliasIsSetThroughItsAddress()
    {
        var o = Load(RepositoryFiles.ValidConfig, new Hashtable { ["POSTERN_Aliases__postmaster@example.com__0"] = "admin@example.com" });
        Assert.Equal(["admin@example.com"], o.Aliases["postmaster@example.com"]);
    }

    [Fact]
    public void KeyNamesAreNotCaseSensitive()
    {
        var o = Load(RepositoryFiles.ValidConfig, new Hashtable { ["POSTERN_limits__maxrecipients"] = "250" });
        Assert.Equal(250, o.Limits.MaxRecipients);
    }

    [Fact]
    public void ABadValueFromTheEnvironmentNamesTheKey()
    {
        var e = Assert.Throws<ConfigurationException>(() => Load(RepositoryFiles.ValidConfig, new Hashtable { ["POSTERN_Limits__MaxRecipients"] = "0" }));
        Assert.Contains("Limits.MaxRecipients:", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ConfigurationException>(() => Load(RepositoryFiles.ValidConfig, new Hashtable { ["POSTERN_Limits__MaxMessageSize"] = "lots" }));
        Assert.Contains("Limits.MaxMessageSize", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownKeyFromTheEnvironmentIsAnError()
    {
        var e = Assert.Throws<ConfigurationException>(() => Load(RepositoryFiles.ValidConfig, new Hashtable { ["POSTERN_Limts__MaxRecipients"] = "10" }));
        Assert.Contains("Limts", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OtherVariablesAndPosternDataAreNotKeys()
    {
        // POSTERN_DATA only picks the --dev data folder; without --dev it changes nothing.
        var o = Load(RepositoryFiles.ValidConfig, new Hashtable
        {
            ["PATH"] = "/usr/bin",
            ["HOME"] = "/root",
            ["POSTERN_DATA"] = "/somewhere/else",
        });
        Assert.NotEqual(Path.GetFullPath("/somewhere/else"), o.DataDirectory);
        Assert.Equal(52_428_800, o.Limits.MaxMessageSize);
    }

    [Fact]
    public void OverridesApplyOnTopOfTheDevDefaults()
    {
        var data = Path.Combine(Path.GetTempPath(), "postern-config-tests", Guid.NewGuid().ToString("N"));
        var o = ConfigurationLoader.Load(null, dev: true, new Hashtable
        {
            ["POSTERN_DATA"] = data,
            ["POSTERN_Listeners__0__Endpoint"] = "127.0.0.1:2526",
            ["POSTERN_Limits__MaxMessageSize"] = "2048",
        });
        Assert.Equal("127.0.0.1:2526", o.Listeners[0].Endpoint);
        Assert.Equal("127.0.0.1:2587", o.Listeners[1].Endpoint);
        Assert.Equal(2048, o.Limits.MaxMessageSize);
    }
}
