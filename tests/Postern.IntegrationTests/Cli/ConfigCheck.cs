using System.Text.Json;

namespace Postern.IntegrationTests.Cli;

/// <summary>`postern config check`: validates and prints the effective values; exit 2 naming the key at fault (SPEC §1, §2).</summary>
public sealed class ConfigCheck
{
    [Fact]
    public async Task PrintsTheEffectiveValuesWithDefaultsFilledIn()
    {
        using var cli = PosternCli.WithConfig(change: c => c["Limits"] = new Dictionary<string, int> { ["MaxRecipients"] = 250 });
        var r = await cli.RunAsync("config", "check");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("configuration OK", r.Out, StringComparison.Ordinal);
        Assert.Contains(cli.ConfigFile, r.Out, StringComparison.Ordinal);
        Assert.Contains("\"Hostname\": \"mail.example.test\"", r.Out, StringComparison.Ordinal);
        Assert.Contains("\"MaxRecipients\": 250", r.Out, StringComparison.Ordinal);
        Assert.Contains("\"MaxMessageSize\": 52428800", r.Out, StringComparison.Ordinal);
        Assert.Contains("\"CommandTimeout\": \"00:05:00\"", r.Out, StringComparison.Ordinal);
        Assert.Equal("", r.Err);
    }

    [Fact]
    public async Task JsonIsTheEffectiveConfiguration()
    {
        using var cli = PosternCli.WithConfig(change: c => c["DataDirectory"] = "state");
        var r = await cli.RunAsync("config", "check", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        Assert.Equal("mail.example.test", root.GetProperty("Hostname").GetString());
        // A relative DataDirectory is shown resolved, beside the configuration file.
        Assert.Equal(Path.Combine(cli.Folder, "state"), root.GetProperty("DataDirectory").GetString());
        var listener = root.GetProperty("Listeners")[0];
        Assert.Equal("mx", listener.GetProperty("Name").GetString());
        Assert.Equal("mx", listener.GetProperty("Role").GetString());
        Assert.Equal(52_428_800, root.GetProperty("Limits").GetProperty("MaxMessageSize").GetInt64());
        Assert.Equal("passwd", root.GetProperty("Accounts").GetProperty("PasswdFile").GetString());
    }

    [Fact]
    public async Task ABrokenConfigurationExitsTwoNamingTheKey()
    {
        using var cli = PosternCli.WithConfig(change: c => c["Limits"] = new Dictionary<string, int> { ["MaxRecipients"] = 0 });
        var r = await cli.RunAsync("config", "check");
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Equal("", r.Out);
        Assert.StartsWith("postern: configuration error: Limits.MaxRecipients: ", r.Err, StringComparison.Ordinal);
        Assert.Single(r.Err.Trim().Split('\n'));
    }

    [Fact]
    public async Task AnUnknownKeyExitsTwoNamingIt()
    {
        using var cli = PosternCli.WithConfig(change: c => c["Limts"] = new Dictionary<string, int> { ["MaxRecipients"] = 10 });
        var r = await cli.RunAsync("config", "check");
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("Limts", r.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMissingConfigurationFileExitsTwo()
    {
        var missing = Path.Combine(Path.GetTempPath(), "postern-tests", Guid.NewGuid().ToString("N"), "postern.json");
        var r = await PosternCli.RunRawAsync("", "config", "check", "--config", missing);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(missing, r.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DevNeedsNoFile()
    {
        var r = await PosternCli.RunRawAsync("", "config", "check", "--dev", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Out);
        var endpoints = doc.RootElement.GetProperty("Listeners").EnumerateArray().Select(l => l.GetProperty("Endpoint").GetString()).ToList();
        Assert.Equal(["127.0.0.1:2525", "127.0.0.1:2587", "127.0.0.1:2465"], endpoints);
        Assert.Equal(["localhost", "example.test"], doc.RootElement.GetProperty("Domains").EnumerateArray().Select(d => d.GetString()));
    }

    [Theory]
    [InlineData("config")]
    [InlineData("config", "validate")]
    [InlineData("config", "check", "--jsn")]
    public async Task AMalformedCommandIsAUsageError(params string[] args)
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunAsync(args);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.StartsWith("postern: ", r.Err, StringComparison.Ordinal);
    }
}
