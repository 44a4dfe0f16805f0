using System.Diagnostics;
using System.Net;
using MailKit.Net.Smtp;
using MailKit.Security;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 5: the AUTH limits hold when sessions race (an attempt is reserved before its
/// password is checked), a locked account answers as an unknown name does (no enumeration), and
/// an account lockout never locks its owner out of an address she logged in from, even after a
/// restart. Real concurrent clients (MailKit) on the submissions port; the real password checks
/// are counted by AccountStore.PasswordChecks.
/// </summary>
public sealed class AuthBansHoldUnderRaces
{
    private static IPAddress Ip(int last) => IPAddress.Parse($"127.0.0.{last}");

    /// <summary>Opens MailKit sessions (TLS on connect) from the given addresses, all before any of them authenticates.</summary>
    private static async Task<List<SmtpClient>> ConnectAllAsync(TestServer server, IEnumerable<IPAddress> from)
    {
        var clients = from.Select(ip => new SmtpClient
        {
            LocalDomain = "client.example",
            LocalEndPoint = new IPEndPoint(ip, 0),
            ServerCertificateValidationCallback = (_, _, _, _) => true,
            CheckCertificateRevocation = false,
            Timeout = 60_000,
        }).ToList();
        await Task.WhenAll(clients.Select(c => c.ConnectAsync("127.0.0.1", server.SubmissionsPort, SecureSocketOptions.SslOnConnect)));
        return clients;
    }

    /// <summary>Every client tries at once; returns how each ended (235, 535, 454...).</summary>
    private static async Task<List<string>> AuthenticateAllAsync(List<SmtpClient> clients, string user, string password)
    {
        using var start = new Barrier(clients.Count);
        var outcomes = await Task.WhenAll(clients.Select(c => Task.Run(async () =>
        {
            start.SignalAndWait();
            try
            {
                await c.AuthenticateAsync(new SaslMechanismPlain(new NetworkCredential(user, password)));
                return "235";
            }
            catch (AuthenticationException)
            {
                return "535";
            }
            catch (SmtpCommandException e)
            {
                return ((int)e.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
        })));
        foreach (var c in clients)
        {
            c.Dispose();
        }
        return [.. outcomes];
    }

    [Fact]
    public async Task TwentyConcurrentGuessesFromOneAddressGetNoMoreChecksThanTheLimit()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 5;
            o.Accounts.MaxAuthFailuresPerAccount = 1000;
            o.Accounts.FailureDelay = TimeSpan.FromMilliseconds(50);
            o.Limits.MaxConnectionsPerIp = 50;
        });
        var clients = await ConnectAllAsync(server, Enumerable.Repeat(Ip(60), 20));
        var outcomes = await AuthenticateAllAsync(clients, "alice@example.test", "wrong-guess");
        var checks = server.Server.Accounts.PasswordChecks;
        Assert.True(checks <= 5, $"{checks} real password checks from one address (limit 5): {string.Join(",", outcomes)}");
        Assert.True(checks >= 1, "no password was checked at all");
        Assert.DoesNotContain("235", outcomes);
        // The address is banned now: the owner's password from it is not even tried.
        await server.WaitForLogAsync("event=ban", "key=ip:127.0.0.60");
        await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: Ip(60));
        Assert.StartsWith("454 4.7.0", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
        Assert.Equal(checks, server.Server.Accounts.PasswordChecks);
    }

    [Fact]
    public async Task ConcurrentGuessesAtOneAccountFromEightAddressesGetNoMoreChecksThanTheAccountLimit()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 5;
            o.Accounts.MaxAuthFailuresPerAccount = 10;
            o.Accounts.FailureDelay = TimeSpan.FromMilliseconds(50);
        });
        var clients = await ConnectAllAsync(server, Enumerable.Range(0, 8).SelectMany(i => Enumerable.Repeat(Ip(70 + i), 5)));
        var outcomes = await AuthenticateAllAsync(clients, "bob@example.test", "wrong-guess");
        var checks = server.Server.Accounts.PasswordChecks;
        Assert.True(checks <= 10, $"{checks} real password checks of one account (limit 10): {string.Join(",", outcomes)}");
        Assert.DoesNotContain("235", outcomes);
        await server.WaitForLogAsync("event=ban", "key=user:bob@example.test");
    }

    [Fact]
    public async Task ALockedAccountAnswersAsAnUnknownNameDoes()
    {
        var delay = TimeSpan.FromMilliseconds(300);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 100;
            o.Accounts.MaxAuthFailuresPerAccount = 3;
            o.Accounts.FailureDelay = delay;
        });
        for (var i = 0; i < 3; i++)
        {
            await using var guesser = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: Ip(80 + i));
            Assert.StartsWith("535", await guesser.AuthPlainAsync("bob@example.test", "wrong-guess"));
        }
        await server.WaitForLogAsync("event=ban", "key=user:bob@example.test");
        var checks = server.Server.Accounts.PasswordChecks;

        // From fresh addresses (each its first failure, so the same delay): a wrong password for the
        // locked account, the right one, and a name that is no account get the same reply, as late.
        async Task<(string Reply, TimeSpan Took)> TryAsync(int from, string user, string password)
        {
            await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: Ip(from));
            var clock = Stopwatch.StartNew();
            var reply = await c.AuthPlainAsync(user, password);
            return (reply, clock.Elapsed);
        }
        var locked = await TryAsync(90, "bob@example.test", "another-guess");
        var lockedRight = await TryAsync(91, "bob@example.test", TestServer.BobPassword);
        var unknown = await TryAsync(92, "nobody@example.test", "another-guess");
        Assert.StartsWith("535 5.7.8", unknown.Reply);
        Assert.Equal(unknown.Reply, locked.Reply);
        Assert.Equal(unknown.Reply, lockedRight.Reply);
        Assert.True(locked.Took >= delay, $"the locked account answered after {locked.Took.TotalMilliseconds} ms");
        Assert.True(lockedRight.Took >= delay, $"the locked account answered after {lockedRight.Took.TotalMilliseconds} ms");
        Assert.True(unknown.Took >= delay, $"the unknown name answered after {unknown.Took.TotalMilliseconds} ms");
        // The locked account's hash was not tried.
        Assert.Equal(checks, server.Server.Accounts.PasswordChecks);
    }

    [Fact]
    public async Task AnAccountLockoutSparesItsOwnersAddressAfterARestart()
    {
        string dataDir;
        await using (var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 100;
            o.Accounts.MaxAuthFailuresPerAccount = 3;
            o.Accounts.FailureDelay = TimeSpan.Zero;
        }))
        {
            dataDir = server.DataDir;
            server.KeepData = true;
            // Bob logs in from his usual address; then a botnet locks his account.
            await using (var bob = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: Ip(100)))
            {
                Assert.StartsWith("235", await bob.AuthPlainAsync("bob@example.test", TestServer.BobPassword));
            }
            for (var i = 0; i < 3; i++)
            {
                await using var guesser = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: Ip(101 + i));
                Assert.StartsWith("535", await guesser.AuthPlainAsync("bob@example.test", "wrong-guess"));
            }
            await server.WaitForLogAsync("event=ban", "key=user:bob@example.test");
        }
        await using var restarted = await TestServer.StartOnAsync(dataDir, o =>
        {
            o.Accounts.MaxAuthFailures = 100;
            o.Accounts.MaxAuthFailuresPerAccount = 3;
            o.Accounts.FailureDelay = TimeSpan.Zero;
        });
        // Bob at his usual address gets in...
        await using (var again = await RawSmtp.OpenAsync(restarted.SubmissionsPort, implicitTls: true, from: Ip(100)))
        {
            Assert.StartsWith("235", await again.AuthPlainAsync("bob@example.test", TestServer.BobPassword));
        }
        // ...while the account stays locked for everyone else.
        await using var other = await RawSmtp.OpenAsync(restarted.SubmissionsPort, implicitTls: true, from: Ip(110));
        Assert.StartsWith("535", await other.AuthPlainAsync("bob@example.test", TestServer.BobPassword));
    }
}
