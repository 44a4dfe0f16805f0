using System.Net;
using Microsoft.Extensions.Time.Testing;
using Postern.Server.Accounts;
using Postern.Server.Configuration;

namespace Postern.Server.Tests;

/// <summary>
/// Issue 12 item 5, in memory: an AUTH attempt is reserved before its password is checked, so the
/// attempts in flight count against the limits as failures do; a locked account is told apart from
/// a limited address; the owner's known addresses survive a restart.
/// </summary>
public sealed class AuthAttemptReservations : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-auth-").FullName;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch.AddYears(56));
    private readonly AccountsOptions _options = new() { MaxAuthFailures = 5, MaxAuthFailuresPerAccount = 10, FailureDelay = TimeSpan.Zero };

    private AuthFailures NewFailures() => new(_time, () => _options, new BanList(Path.Combine(_dir, "bans.json"), _time),
        new KnownAddresses(Path.Combine(_dir, "logins.json"), _time));

    private static IPAddress Ip(int last) => IPAddress.Parse($"192.0.2.{last}");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AttemptsInFlightCountAgainstTheAddressLimit()
    {
        var failures = NewFailures();
        var attempts = Enumerable.Range(0, 20).Select(_ => failures.Begin(Ip(1), null)).ToList();
        Assert.Equal(5, attempts.Count(a => a.Verdict == AuthFailures.Verdict.Check));
        Assert.Equal(15, attempts.Count(a => a.Verdict == AuthFailures.Verdict.AddressLimit));
        // One gives its reservation back (the client left): one more may try.
        attempts.First(a => a.Verdict == AuthFailures.Verdict.Check).Dispose();
        Assert.Equal(AuthFailures.Verdict.Check, failures.Begin(Ip(1), null).Verdict);
    }

    [Fact]
    public void AttemptsInFlightAtOneAccountFromManyAddressesStopAtTheAccountLimit()
    {
        var failures = NewFailures();
        var attempts = Enumerable.Range(0, 40).Select(i => failures.Begin(Ip(10 + i / 5), "bob@example.test")).ToList();
        Assert.Equal(10, attempts.Count(a => a.Verdict == AuthFailures.Verdict.Check));
        Assert.Equal(30, attempts.Count(a => a.Verdict == AuthFailures.Verdict.AccountLocked));
        foreach (var a in attempts)
        {
            a.Failed();
        }
        Assert.NotNull(failures.Bans.Active("user:bob@example.test"));
        // Five failures from each address: every one of them banned too, locked-account guesses included.
        Assert.All(Enumerable.Range(0, 8), i => Assert.NotNull(failures.Bans.Active($"ip:192.0.2.{10 + i}")));
    }

    [Fact]
    public void TheOwnersAddressIsSparedTheAccountLockoutAfterARestart()
    {
        var failures = NewFailures();
        failures.Begin(Ip(50), "bob@example.test").Succeeded("bob@example.test");
        for (var i = 0; i < 10; i++)
        {
            failures.Begin(Ip(60 + i), "bob@example.test").Failed();
        }
        Assert.NotNull(failures.Bans.Active("user:bob@example.test"));
        _time.Advance(KnownAddresses.WriteDelay); // the login is written once the delay has passed
        var restarted = NewFailures();
        Assert.Equal(AuthFailures.Verdict.Check, restarted.Begin(Ip(50), "bob@example.test").Verdict);
        Assert.Equal(AuthFailures.Verdict.AccountLocked, restarted.Begin(Ip(70), "bob@example.test").Verdict);
        // Thirty days without a login: the address is forgotten.
        _time.Advance(KnownAddresses.KeptFor);
        Assert.False(NewFailures().Known.Contains("bob@example.test", Ip(50)));
    }
}
