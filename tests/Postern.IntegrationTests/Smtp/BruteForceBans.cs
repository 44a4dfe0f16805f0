using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 2: bans per address and per account, longer for repeat offenders, kept in
/// DATA/bans.json (so they survive a restart) and shown and lifted by `postern bans`.
/// </summary>
public sealed class BruteForceBans
{
    private static async Task<string> FailAsync(TestServer server, IPAddress from, string user, string password = "wrong-guess")
    {
        await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: from);
        return await c.AuthPlainAsync(user, password);
    }

    private static async Task<string> LoginAsync(TestServer server, IPAddress from, string user, string password)
    {
        await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: from);
        return await c.AuthPlainAsync(user, password);
    }

    private static IPAddress Ip(int last) => IPAddress.Parse($"127.0.0.{last}");

    [Fact]
    public async Task ARepeatOffenderIsBannedTwiceAsLong()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 2;
            o.Accounts.FailureDelay = TimeSpan.Zero;
            o.Accounts.LockoutDuration = TimeSpan.FromMinutes(10);
        }, time: time);
        Assert.StartsWith("535", await FailAsync(server, Ip(21), "alice@example.test"));
        Assert.StartsWith("535", await FailAsync(server, Ip(21), "alice@example.test"));
        Assert.StartsWith("454 4.7.0", await LoginAsync(server, Ip(21), "alice@example.test", TestServer.AlicePassword));
        await server.WaitForLogAsync("event=ban", "key=ip:127.0.0.21", "level=1");
        time.Advance(TimeSpan.FromMinutes(11));
        Assert.StartsWith("535", await FailAsync(server, Ip(21), "alice@example.test"));
        Assert.StartsWith("535", await FailAsync(server, Ip(21), "alice@example.test"));
        await server.WaitForLogAsync("event=ban", "key=ip:127.0.0.21", "level=2");
        // Twenty minutes this time: eleven are not enough.
        time.Advance(TimeSpan.FromMinutes(11));
        Assert.StartsWith("454 4.7.0", await LoginAsync(server, Ip(21), "alice@example.test", TestServer.AlicePassword));
        time.Advance(TimeSpan.FromMinutes(10));
        Assert.StartsWith("235", await LoginAsync(server, Ip(21), "alice@example.test", TestServer.AlicePassword));
    }

    [Fact]
    public async Task GuessesAtOneAccountFromManyAddressesBanTheAccountButNotItsOwner()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 10;
            o.Accounts.MaxAuthFailuresPerAccount = 4;
            o.Accounts.FailureDelay = TimeSpan.Zero;
        });
        // Bob logs in from his usual address first.
        Assert.StartsWith("235", await LoginAsync(server, Ip(30), "bob@example.test", TestServer.BobPassword));
        // A botnet: one guess from each of four addresses.
        for (var i = 31; i <= 34; i++)
        {
            Assert.StartsWith("535", await FailAsync(server, Ip(i), "bob@example.test"));
        }
        await server.WaitForLogAsync("event=ban", "key=user:bob@example.test", "failures=4");
        // Even the right password from a fifth address is refused, without being tried, as a wrong
        // one would be (issue 12: a 454 told which names are accounts)...
        Assert.StartsWith("535 5.7.8", await LoginAsync(server, Ip(35), "bob@example.test", TestServer.BobPassword));
        // ...but Bob at his usual address gets in, and other accounts are not affected.
        Assert.StartsWith("235", await LoginAsync(server, Ip(30), "bob@example.test", TestServer.BobPassword));
        Assert.StartsWith("235", await LoginAsync(server, Ip(35), "alice@example.test", TestServer.AlicePassword));
        // Names that are not accounts are not counted (they would only fill the ban list).
        for (var i = 0; i < 6; i++)
        {
            Assert.StartsWith("535", await FailAsync(server, Ip(40 + i), "nobody@example.test"));
        }
        Assert.DoesNotContain(server.LogLines, l => l.Contains("key=user:nobody@example.test", StringComparison.Ordinal));
    }

    [Fact]
    public async Task BansAreListedAndReleasedWithTheCliAndSurviveARestart()
    {
        string dataDir;
        await using (var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 2;
            o.Accounts.FailureDelay = TimeSpan.Zero;
        }))
        {
            dataDir = server.DataDir;
            server.KeepData = true;
            await FailAsync(server, Ip(50), "alice@example.test");
            await FailAsync(server, Ip(50), "alice@example.test");
            await FailAsync(server, Ip(51), "alice@example.test");
            await FailAsync(server, Ip(51), "alice@example.test");
            using var cli = PosternCli.WithConfig(dataDirectory: dataDir);
            var list = await cli.RunAsync("bans", "list", "--json");
            Assert.Equal(0, list.ExitCode);
            var keys = JsonDocument.Parse(list.Out).RootElement.EnumerateArray().Select(b => b.GetProperty("Key").GetString()).ToList();
            Assert.Equal(["ip:127.0.0.50", "ip:127.0.0.51"], keys.Order());
            Assert.Contains("ip:127.0.0.50", (await cli.RunAsync("bans", "list")).Out);

            // Released while the server runs: it notices, and logs it.
            var release = await cli.RunAsync("bans", "release", "127.0.0.50");
            Assert.True(release.ExitCode == 0, release.ToString());
            Assert.Contains("released ip:127.0.0.50", release.Out);
            await Task.Delay(1100); // the server looks at the file at most once a second
            Assert.StartsWith("235", await LoginAsync(server, Ip(50), "alice@example.test", TestServer.AlicePassword));
            await server.WaitForLogAsync("event=ban_released", "key=ip:127.0.0.50");
            Assert.Equal(1, (await cli.RunAsync("bans", "release", "ip:127.0.0.50")).ExitCode);
        }
        // The other ban is in the file, so a restarted server still refuses that address.
        await using var restarted = await TestServer.StartOnAsync(dataDir);
        Assert.StartsWith("454 4.7.0", await LoginAsync(restarted, Ip(51), "alice@example.test", TestServer.AlicePassword));
    }
}
