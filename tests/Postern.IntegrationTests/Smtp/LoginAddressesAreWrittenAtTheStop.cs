using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Accounts;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12: DATA/logins.json (the addresses that spare an account's owner its lockout) is written
/// a second after a login, outside the AUTH path; a graceful stop writes what is still pending, so
/// a login just before a restart is not forgotten. The server's clock is a fake one that never
/// moves here, so only the stop can have written the file.
/// </summary>
public sealed class LoginAddressesAreWrittenAtTheStop
{
    [Fact]
    public async Task ALoginJustBeforeTheStopIsKnownAfterTheRestart()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var dir = TestServer.NewDataDir();
        var logins = Path.Combine(dir, "logins.json");
        await using (var server = await TestServer.StartOnAsync(dir, time: time))
        {
            server.KeepData = true; // for the restart
            await using (var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
            {
                Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            }
            await server.WaitForLogAsync("event=auth_ok", "user=alice@example.test");
            Assert.True(server.Server.Context.AuthFailures.Known.Contains("alice@example.test", IPAddress.Loopback));
            Assert.False(File.Exists(logins)); // not written in the AUTH path, and the clock has not moved
        }
        var known = JsonSerializer.Deserialize<List<KnownAddress>>(File.ReadAllBytes(logins))!;
        Assert.Equal("alice@example.test", Assert.Single(known).User);
        await using var restarted = await TestServer.StartOnAsync(dir, time: time);
        Assert.True(restarted.Server.Context.AuthFailures.Known.Contains("alice@example.test", IPAddress.Loopback));
    }
}
