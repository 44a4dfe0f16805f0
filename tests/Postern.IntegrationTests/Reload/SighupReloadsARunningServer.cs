using System.Text;
using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Reload;

/// <summary>
/// SIGHUP, sent with kill(1) to a real `postern serve`, reads the configuration file again (issue 11
/// item 3): a setting that needs no new socket is applied at once, a session under way keeps its
/// transaction, a setting that needs a restart keeps its running value, an invalid file changes
/// nothing; and the server never stops (SIGHUP's default action would end it with exit 129).
/// </summary>
public sealed class SighupReloadsARunningServer : IDisposable
{
    private readonly string _folder = TestServer.NewDataDir();

    public void Dispose()
    {
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Task<PosternProcess> StartAsync() => PosternProcess.StartAsync(Path.Combine(_folder, "data"), TimeSpan.FromSeconds(30));

    /// <summary>The Limits section PosternProcess writes, with another MaxMessageSize.</summary>
    private static object Limits(long maxMessageSize) => new
    {
        MaxConnectionsPerIpPerMinute = 0,
        MaxMessagesPerHourPerIp = 0,
        MaxRecipientsPerHourPerIp = 0,
        MaxMessageSize = maxMessageSize,
    };

    private static string Message(int octets) =>
        "From: <someone@remote.example>\r\nTo: <postmaster@example.test>\r\nSubject: size\r\n\r\n"
        + string.Concat(Enumerable.Repeat(new string('x', 98) + "\r\n", octets / 100)) + ".\r\n";

    private static async Task<string> SendAsync(RawSmtp c, string body, int expect)
    {
        await c.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<postmaster@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        await c.SendAsync(body);
        return await c.ExpectAsync(expect);
    }

    [Fact]
    public async Task ANewLogLevelAppliesToTheNextLine()
    {
        // Started at warning: a connection's event=connect (information) is not written.
        using var server = await PosternProcess.StartAsync(Path.Combine(_folder, "data"), TimeSpan.FromSeconds(30),
            new Dictionary<string, object> { ["Logging"] = new { Level = "warning" } });
        var quiet = System.Net.IPAddress.Parse("127.0.0.77");
        await using (var c = await RawSmtp.OpenAsync(server.Port, host: server.Host, from: quiet))
        {
            await c.CommandAsync("QUIT", 221); // its connect line, if any, was written before the greeting
        }
        server.Settings["Logging"] = new { Level = "information" };
        server.WriteConfig();
        server.Hangup();
        // Connections after the reload are written: try until one is (the reload may take a moment).
        var loud = System.Net.IPAddress.Parse("127.0.0.78");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!server.Output.Contains("event=connect", StringComparison.Ordinal) || !server.Output.Contains("ip=127.0.0.78", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "no connection was logged after the reload to information:\n" + server.Output);
            await using var c = await RawSmtp.OpenAsync(server.Port, host: server.Host, from: loud);
            await c.CommandAsync("QUIT", 221);
        }
        Assert.DoesNotContain("ip=127.0.0.77", server.Output, StringComparison.Ordinal);
        Assert.False(server.HasExited);
    }

    [Fact]
    public async Task ANewMaxMessageSizeAppliesAndATransactionUnderWayFinishes()
    {
        using var server = await StartAsync();
        await using var before = await RawSmtp.OpenAsync(server.Port, host: server.Host);
        // A transaction open across the reload: it began under the 50 MiB limit.
        await before.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
        await before.CommandAsync("RCPT TO:<postmaster@example.test>", 250);

        server.Settings["Limits"] = Limits(2048);
        server.WriteConfig();
        server.Hangup();
        var line = await server.WaitForLineAsync("event=reloaded", "trigger=SIGHUP");
        Assert.Contains("changed=Limits.MaxMessageSize restart_needed=-", line, StringComparison.Ordinal);

        await before.CommandAsync("DATA", 354);
        await before.SendAsync(Message(5000));
        await before.ExpectAsync(250);
        // Its next transaction is under the new limit.
        var refused = await before.CommandAsync("MAIL FROM:<someone@remote.example> SIZE=5000");
        Assert.StartsWith("552 5.3.4", refused, StringComparison.Ordinal);

        await using var after = await RawSmtp.ConnectAsync(server.Port, host: server.Host);
        await after.ExpectAsync(220);
        var ehlo = await after.CommandAsync("EHLO client.example", 250);
        Assert.Contains("SIZE 2048", ehlo, StringComparison.Ordinal);
        var tooBig = await SendAsync(after, Message(5000), 552);
        Assert.StartsWith("552 5.3.4", tooBig, StringComparison.Ordinal);
        await SendAsync(after, Message(100), 250);

        // A second SIGHUP with nothing changed: said so, and still no exit.
        server.Hangup();
        await server.WaitForLineAsync("event=reloaded", "trigger=SIGHUP", "changed=-");
        Assert.False(server.HasExited, server.Output);
    }

    [Fact]
    public async Task AnInvalidFileIsRefusedWithEveryErrorAndTheOldSettingsStay()
    {
        using var server = await StartAsync();
        server.Settings["Limits"] = Limits(10);
        server.Settings["Domains"] = new[] { "not a domain" };
        server.WriteConfig();
        server.Hangup();
        var line = await server.WaitForLineAsync("event=reload_failed", "trigger=SIGHUP");
        Assert.Contains("errors=2", line, StringComparison.Ordinal);
        Assert.Contains("Limits.MaxMessageSize", line, StringComparison.Ordinal);
        Assert.Contains("Domains[0]", line, StringComparison.Ordinal);

        await using var c = await RawSmtp.ConnectAsync(server.Port, host: server.Host);
        await c.ExpectAsync(220);
        Assert.Contains("SIZE 52428800", await c.CommandAsync("EHLO client.example", 250), StringComparison.Ordinal);
        await SendAsync(c, Message(5000), 250);
        Assert.False(server.HasExited, server.Output);
    }

    [Fact]
    public async Task AChangedListenerEndpointNeedsARestartAndTheOldOneServes()
    {
        using var server = await StartAsync();
        var moved = $"{server.Host}:{server.Port + 1}";
        server.Settings["Listeners"] = new[] { new { Name = "mx", Endpoint = moved, Role = "mx" } };
        server.Settings["Limits"] = Limits(4096);
        server.WriteConfig();
        server.Hangup();
        var warning = await server.WaitForLineAsync("event=restart_needed", "key=Listeners[0].Endpoint");
        Assert.Contains(moved, warning, StringComparison.Ordinal);
        var line = await server.WaitForLineAsync("event=reloaded", "trigger=SIGHUP");
        Assert.Contains("changed=Limits.MaxMessageSize restart_needed=Listeners[0].Endpoint", line, StringComparison.Ordinal);

        // The old endpoint serves, with the setting that could be applied.
        await using var c = await RawSmtp.ConnectAsync(server.Port, host: server.Host);
        await c.ExpectAsync(220);
        Assert.Contains("SIZE 4096", await c.CommandAsync("EHLO client.example", 250), StringComparison.Ordinal);
        Assert.False(server.HasExited, server.Output);
    }

    [Fact]
    public async Task ANewDomainIsLocalAfterTheReload()
    {
        using var server = await StartAsync();
        await using (var c = await RawSmtp.OpenAsync(server.Port, host: server.Host))
        {
            await c.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
            Assert.StartsWith("554 5.7.1", await c.CommandAsync("RCPT TO:<postmaster@new.example>"), StringComparison.Ordinal);
        }

        server.Settings["Domains"] = new[] { "example.test", "new.example" };
        server.WriteConfig();
        server.Hangup();
        await server.WaitForLineAsync("event=reloaded", "changed=Domains");

        await using var after = await RawSmtp.OpenAsync(server.Port, host: server.Host);
        await after.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
        await after.CommandAsync("RCPT TO:<postmaster@new.example>", 250);
        await after.CommandAsync("DATA", 354);
        await after.SendAsync("Subject: hello\r\n\r\nhello\r\n.\r\n");
        await after.ExpectAsync(250);
        Assert.False(server.HasExited, server.Output);
    }
}
