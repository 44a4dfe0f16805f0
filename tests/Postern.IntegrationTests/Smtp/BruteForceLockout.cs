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
        await server.WaitForLogAsync("event=ban", "key=ip:127.0.0.1", "failures=3", "level=1");
        // Eleven minutes on, the idle session has timed out (Limits.CommandTimeout, same clock): a new one.
        time.Advance(TimeSpan.FromMinutes(11));
        await using var later = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true);
        Assert.StartsWith("235 2.7.0", await later.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
    }

    [Fact]
    public async Task ASuccessfulLoginDoesNotForgiveEarlierFailures()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 3;
            o.Accounts.FailureDelay = TimeSpan.Zero;
        });
        await using (var guesser = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("535", await guesser.AuthPlainAsync("bob@example.test", "guess-one"));
            Assert.StartsWith("535", await guesser.AuthPlainAsync("bob@example.test", "guess-two"));
        }
        // The guesser logs in with an account of its own...
        await using (var own = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("235", await own.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
        }
        // ...which does not reset the count: the third guess locks the address out.
        await using var again = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true);
        Assert.StartsWith("535", await again.AuthPlainAsync("bob@example.test", "guess-three"));
        Assert.StartsWith("454 4.7.0", await again.AuthPlainAsync("bob@example.test", TestServer.BobPassword));
    }

    [Fact]
    public async Task DelayDoublesWithEachFailure()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Accounts.MaxAuthFailures = 10;
            o.Accounts.FailureDelay = TimeSpan.FromMilliseconds(100);
        }, time: time);
        await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true);
        for (var i = 0; i < 4; i++)
        {
            var expected = TimeSpan.FromMilliseconds(100 * Math.Pow(2, i));
            var reply = c.AuthPlainAsync("alice@example.test", "nope-nope");
            await server.WaitForLogAsync("event=auth_failed", $"failures={i + 1} ");
            // The 535 waits on the injected clock: not a moment before the delay has passed...
            time.Advance(expected - TimeSpan.FromMilliseconds(1));
            await Task.WhenAny(reply, Task.Delay(300));
            Assert.False(reply.IsCompleted, $"failure {i + 1}: answered before {expected.TotalMilliseconds} ms");
            // ...and then at once.
            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.StartsWith("535 5.7.8", await reply.WaitAsync(TimeSpan.FromSeconds(10)));
        }
    }
}
