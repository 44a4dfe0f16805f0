using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>SPEC §4: accounts, aliases (re-read on change), plus-addressing and postmaster.</summary>
public sealed class LocalAddresses
{
    private static async Task SendAsync(TestServer server, string to, string subject)
    {
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<sender@remote.example>", 250);
        await c.CommandAsync($"RCPT TO:<{to}>", 250);
        await c.CommandAsync("DATA", 354);
        await c.CommandAsync($"Subject: {subject}\r\n\r\nhello\r\n.", 250);
        await c.CommandAsync("QUIT", 221);
    }

    [Fact]
    public async Task AliasFansOutAndPlusTagGoesToTheAccount()
    {
        await using var server = await TestServer.StartAsync();
        await SendAsync(server, "sales@example.test", "to sales");
        await SendAsync(server, "alice+lists@example.test", "tagged");
        var alice = await server.WaitForDeliveryAsync("alice@example.test", 2);
        var bob = await server.WaitForDeliveryAsync("bob@example.test", 1);
        Assert.Contains(alice, m => Encoding.UTF8.GetString(m).Contains("Subject: tagged"));
        Assert.Contains("Subject: to sales", Encoding.UTF8.GetString(bob[0]));
        Assert.StartsWith("Return-Path: <sender@remote.example>\r\nDelivered-To: alice@example.test\r\n", Encoding.UTF8.GetString(alice[0]));
    }

    [Fact]
    public async Task PostmasterWithoutAliasGetsAMailbox()
    {
        await using var server = await TestServer.StartAsync();
        await SendAsync(server, "postmaster@localhost", "hi postmaster");
        var pm = await server.WaitForDeliveryAsync("postmaster@localhost", 1);
        Assert.Contains("hi postmaster", Encoding.UTF8.GetString(pm[0]));
    }

    [Fact]
    public async Task AliasForwardingToRemoteWaitsInTheQueue()
    {
        await using var server = await TestServer.StartAsync();
        await SendAsync(server, "fwd@example.test", "forward me");
        var line = await server.WaitForLogAsync("event=queued_remote", "rcpts=1");
        var id = line.Split("queue_id=")[1].Split(' ')[0];
        Assert.True(File.Exists(Path.Combine(server.DataDir, "queue", "messages", id)));
        var state = await File.ReadAllTextAsync(Path.Combine(server.DataDir, "queue", "state", id));
        Assert.Contains("someone@remote.example", state);
    }

    [Fact]
    public async Task AliasesAreReReadWhenTheConfigurationChanges()
    {
        var dir = TestServer.NewDataDir();
        var config = Path.Combine(dir, "postern.json");
        void Write(string alias) => File.WriteAllText(config, $$"""
            { "Hostname": "mx.example.test", "DataDirectory": "{{dir}}", "Domains": ["example.test"],
              "Listeners": [ { "Endpoint": "127.0.0.1:0", "Role": "mx" } ], "Tls": { "Generate": true },
              "Aliases": { "{{alias}}@example.test": ["alice@example.test"] } }
            """);
        Write("first");
        var options = Postern.Server.Configuration.ConfigurationLoader.Load(config, dev: false, new System.Collections.Hashtable());
        File.WriteAllText(Path.Combine(dir, "passwd"), $"alice@example.test:{Postern.Server.Accounts.PasswordHasher.Hash("x-password")}\n");
        using var logs = new Postern.Server.Logging.KeyValueLoggerProvider(TextWriter.Null);
        await using var server = new Postern.Server.PosternServer(options, logs.CreateLogger("t"), configFile: config);
        server.Start();
        var port = server.Listeners[0].LocalEndPoint.Port;
        async Task<string> Rcpt(string to)
        {
            await using var c = await RawSmtp.OpenAsync(port);
            await c.CommandAsync("MAIL FROM:<a@remote.example>", 250);
            return await c.CommandAsync($"RCPT TO:<{to}>");
        }
        Assert.StartsWith("250", await Rcpt("first@example.test"));
        Assert.StartsWith("550 5.1.1", await Rcpt("second@example.test"));
        await Task.Delay(1100); // a different modification time
        Write("second");
        await Task.Delay(600); // the file is checked at most twice a second
        Assert.StartsWith("250", await Rcpt("second@example.test"));
        Assert.StartsWith("550 5.1.1", await Rcpt("first@example.test"));
    }
}
