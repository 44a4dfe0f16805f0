using System.Text.Json;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Reload;

/// <summary>
/// What a reload reports and applies, in process (PosternServer.Reload with options): each changed
/// setting by its key path, applied or needing a restart (then kept at its running value), every
/// error of a refused configuration, and state that outlives a reload (rate counters).
/// </summary>
public sealed class ReloadNamesWhatChanged
{
    /// <summary>A deep copy of the options in force (a reload gets a new object, as from the file).</summary>
    private static PosternOptions Copy(TestServer t)
    {
        var o = JsonSerializer.Deserialize<PosternOptions>(JsonSerializer.Serialize(t.Server.Context.Options))!;
        o.Aliases = new Dictionary<string, List<string>>(o.Aliases, StringComparer.OrdinalIgnoreCase);
        return o;
    }

    [Fact]
    public async Task AppliedSettingsAreNamedByTheirKeyPaths()
    {
        await using var t = await TestServer.StartAsync();
        var o = Copy(t);
        o.Limits.MaxMessageSize = 4096;
        o.Domains.Add("new.example");
        o.Relay.TrustedNetworks = ["192.0.2.0/24"];
        o.Listeners[1].MailAuth = new MailAuthPolicy { EnforceDmarc = false };
        o.Delivery.RetryInitialDelay = TimeSpan.FromMinutes(1);
        o.Accounts.MaxAuthFailures = 3;

        var r = t.Server.Reload(o, "test");
        Assert.True(r.Ok, string.Join("; ", r.Errors));
        Assert.Equal(["Domains", "Listeners[1].MailAuth", "Relay.TrustedNetworks", "Delivery.RetryInitialDelay", "Limits.MaxMessageSize", "Accounts.MaxAuthFailures"], r.Changed);
        Assert.Empty(r.RestartNeeded);
        var now = t.Server.Context.Configuration;
        Assert.Equal(4096, now.Options.Limits.MaxMessageSize);
        Assert.True(now.LocalDomains.Contains("new.example"));
        Assert.True(now.IsTrusted(System.Net.IPAddress.Parse("192.0.2.7")));
        Assert.True(t.Server.AddressBook.IsLocalDomain("NEW.example"));
        Assert.Equal(2, now.Generation);
        await t.WaitForLogAsync("event=reloaded", "trigger=test", "changed=Domains,Listeners[1].MailAuth,Relay.TrustedNetworks,Delivery.RetryInitialDelay,Limits.MaxMessageSize,Accounts.MaxAuthFailures", "restart_needed=-");
    }

    [Fact]
    public async Task SettingsThatNeedARestartKeepTheirRunningValue()
    {
        await using var t = await TestServer.StartAsync();
        var o = Copy(t);
        var endpoint = o.Listeners[0].Endpoint;
        o.Listeners[0].Endpoint = "127.0.0.1:2";
        o.Listeners[2].Role = ListenerRole.Mx;
        o.Hostname = "other.example.test";
        o.DataDirectory = Path.Combine(t.DataDir, "elsewhere");
        o.Accounts.PasswdFile = "passwd2";
        o.Dns.Timeout = TimeSpan.FromSeconds(2);
        o.Triage.GreetingPause = TimeSpan.FromSeconds(1);

        var r = t.Server.Reload(o, "test");
        Assert.True(r.Ok, string.Join("; ", r.Errors));
        Assert.Equal(["Triage.GreetingPause"], r.Changed);
        Assert.Equal(["Hostname", "DataDirectory", "Listeners[0].Endpoint", "Listeners[2].Role", "Dns.Timeout", "Accounts.PasswdFile"], r.RestartNeeded);
        var now = t.Server.Context.Options;
        Assert.Equal(endpoint, now.Listeners[0].Endpoint);
        Assert.Equal(ListenerRole.Submissions, now.Listeners[2].Role);
        Assert.Equal("mx.example.test", now.Hostname);
        Assert.Equal(t.DataDir, now.DataDirectory);
        Assert.Equal("passwd", now.Accounts.PasswdFile);
        Assert.Equal(TimeSpan.FromSeconds(1), now.Triage.GreetingPause);
        await t.WaitForLogAsync("event=restart_needed", "key=Listeners[0].Endpoint", "configured=\"\\\"127.0.0.1:2\\\"\"");

        // A listener more is a new socket: the whole list needs a restart.
        var more = Copy(t);
        more.Listeners.Add(new ListenerOptions { Name = "mx2", Endpoint = "127.0.0.1:0", Role = ListenerRole.Mx });
        var r2 = t.Server.Reload(more, "test");
        Assert.Equal(["Listeners"], r2.RestartNeeded);
        Assert.Equal(3, t.Server.Context.Options.Listeners.Count);

        // Again: what needs a restart is said at every reload, until the restart.
        var r3 = t.Server.Reload(Copy(t), "test");
        Assert.Empty(r3.Changed);
        Assert.Empty(r3.RestartNeeded);
    }

    [Fact]
    public async Task AnInvalidConfigurationIsRefusedWithEveryErrorAndChangesNothing()
    {
        await using var t = await TestServer.StartAsync();
        var before = t.Server.Context.Configuration;
        var o = Copy(t);
        o.Limits.MaxMessageSize = 10;
        o.Relay.TrustedNetworks = ["not-a-network"];
        o.Domains = ["example.test", "bad domain"];

        var r = t.Server.Reload(o, "test");
        Assert.False(r.Ok);
        Assert.Equal(3, r.Errors.Count);
        Assert.Contains(r.Errors, e => e.StartsWith("Limits.MaxMessageSize:", StringComparison.Ordinal));
        Assert.Contains(r.Errors, e => e.StartsWith("Relay.TrustedNetworks[0]:", StringComparison.Ordinal));
        Assert.Contains(r.Errors, e => e.StartsWith("Domains[1]:", StringComparison.Ordinal));
        Assert.Same(before, t.Server.Context.Configuration);
        await t.WaitForLogAsync("event=reload_failed", "trigger=test", "errors=3", "Limits.MaxMessageSize");
    }

    [Fact]
    public void AliasesDifferingOnlyInOrderAndCaseAreNoChange()
    {
        var a = TestServer.DefaultOptions("/tmp/x");
        var b = TestServer.DefaultOptions("/tmp/x");
        b.Aliases = new(StringComparer.OrdinalIgnoreCase)
        {
            ["FWD@example.test"] = ["someone@remote.example"],
            ["alice.alias@example.test"] = ["alice@example.test"],
            ["sales@example.test"] = ["alice@example.test", "bob@example.test"],
        };
        var same = ConfigurationChanges.Between(a, b);
        Assert.Empty(same.Applied);
        b.Aliases["sales@example.test"] = ["bob@example.test"];
        var changed = ConfigurationChanges.Between(a, b);
        Assert.Equal(["Aliases"], changed.Applied);
        Assert.True(ConfigurationChanges.AppliesOnReload("Relay.Smarthost"));
        Assert.False(ConfigurationChanges.AppliesOnReload("Accounts.PasswdFile"));
        Assert.False(ConfigurationChanges.AppliesOnReload("Logging.Format"));
        Assert.False(ConfigurationChanges.AppliesOnReload("User"));
        Assert.True(ConfigurationChanges.AppliesOnReload("Logging.Level"));
    }

    [Fact]
    public async Task RateCountsOutliveAReloadThatChangesTheLimit()
    {
        await using var t = await TestServer.StartAsync(o => o.Limits.MaxConnectionsPerIpPerMinute = 10);
        for (var i = 0; i < 3; i++)
        {
            await using var c = await RawSmtp.OpenAsync(t.MxPort, ehlo: null);
        }
        var o = Copy(t);
        o.Limits.MaxConnectionsPerIpPerMinute = 3;
        Assert.True(t.Server.Reload(o, "test").Ok);

        // The three connections made before the reload count against the new limit of three.
        await using var refused = await RawSmtp.ConnectAsync(t.MxPort);
        Assert.StartsWith("421 4.7.0", await refused.ReadReplyAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATransactionUnderWayKeepsItsLimitsAndTheNextGetsTheNewOnes()
    {
        await using var t = await TestServer.StartAsync();
        await using var c = await RawSmtp.OpenAsync(t.MxPort);
        await c.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        var o = Copy(t);
        o.Limits.MaxMessageSize = 2048;
        o.Limits.MaxRecipients = 1;
        Assert.True(t.Server.Reload(o, "test").Ok);

        // Still the old limits: a second recipient, a message over 2048 octets.
        await c.CommandAsync("RCPT TO:<bob@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        await c.SendAsync("Subject: big\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 98) + "\r\n", 50)) + ".\r\n");
        await c.ExpectAsync(250);

        // The next transaction on the same connection: the new ones.
        await c.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        Assert.StartsWith("452 4.5.3", await c.CommandAsync("RCPT TO:<bob@example.test>"), StringComparison.Ordinal);
        await c.CommandAsync("DATA", 354);
        await c.SendAsync("Subject: big\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 98) + "\r\n", 50)) + ".\r\n");
        Assert.StartsWith("552 5.3.4", await c.ExpectAsync(552), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnOpenSessionTakesAReloadedJunkCommandLimitAtItsNextCommand()
    {
        await using var t = await TestServer.StartAsync(o => o.Limits.MaxJunkCommands = 100);
        await using var c = await RawSmtp.OpenAsync(t.MxPort);
        for (var i = 0; i < 5; i++)
        {
            await c.CommandAsync("NOOP", 250);
        }
        var o = Copy(t);
        o.Limits.MaxJunkCommands = 6;
        Assert.True(t.Server.Reload(o, "test").Ok);
        // The session was opened under a limit of 100; the engine takes the new one with the next command.
        await c.CommandAsync("NOOP", 250);
        Assert.StartsWith("421 4.7.0", await c.CommandAsync("NOOP"), StringComparison.Ordinal);
        await t.WaitForLogAsync("event=disconnect", "reason=\"too many junk commands\"");
    }
}
