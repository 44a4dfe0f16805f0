using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>SPEC §4: failed AUTH is answered later each time, and enough failures lock the IP out for a while.</summary>
public sealed class BruteForceLockout
{
    [Fact]
    public async Task RepeatedFailuresLockTheAddressOutUntilTheLockoutEnds()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 3;
            o.Accounts.FailureDelay = TimeSpan.FromMilliseconds(1);
            o.Accounts.LockoutDuration = TimeSpan.FromMinutes(10);
        }, time: time);
        await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true);
        for (var i = 0; i < 3; i++)
        {
            var pending = c.AuthPlainAsync("alice@example.test", "wrong-password");
            // The delay before 535 runs on the injected clock: advance it until the reply comes.
            while (!pending.IsCompleted)
            {
                time.Advance(TimeSpan.FromSeconds(1));
                await Task.WhenAny(pending, Task.Delay(20));
            }
            Assert.StartsWith("535 5.7.8", await pending);
        }
        // Locked out: even the right password is refused, with its own reply.
        Assert.StartsWith("454 4.7.0", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
        await server.WaitForLogAsync("event=auth_lockout", "ip=127.0.0.1", "failures=3");
        time.Advance(TimeSpan.FromMinutes(11));
        Assert.StartsWith("235 2.7.0", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
    }

    [Fact]
    public async Task DelayGrowsWithEachFailure()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 10;
            o.Accounts.FailureDelay = TimeSpan.FromMilliseconds(100);
        });
        await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true);
        // A first failure warms up the password check, so that what follows measures the delay.
        Assert.StartsWith("535 5.7.8", await c.AuthPlainAsync("alice@example.test", "warm-up-1"));
        var times = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            Assert.StartsWith("535 5.7.8", await c.AuthPlainAsync("alice@example.test", "nope-nope"));
            times.Add(sw.ElapsedMilliseconds);
        }
        // 200, 400, 800 ms (plus the hash check, which varies): the delay doubles per failure.
        Assert.True(times[2] >= 800 && times[2] > times[0] + 300, string.Join(",", times));
        await server.WaitForLogAsync("event=auth_failed", "failures=4");
    }
}
