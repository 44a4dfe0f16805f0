using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Microsoft.Win32.SafeHandles;
using Postern.Server.Accounts;
using Postern.Server.Storage;

namespace Postern.Server.Tests;

/// <summary>
/// Issue 12, DATA/logins.json (the addresses that spare an account's owner its lockout): bounded
/// per account, so that one account's logins never push out another's owner, and written outside
/// the lock, once per burst of logins, one write at a time.
/// </summary>
public sealed class KnownAddressesBounds : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-known-").FullName;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch.AddYears(56));

    private string FilePath => Path.Combine(_dir, "logins.json");

    private static IPAddress Ip(int n) => new([10, (byte)(n >> 16), (byte)(n >> 8), (byte)n]);

    private static readonly IPAddress Owner = IPAddress.Parse("192.0.2.50");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static List<KnownAddress> Read(string path) => JsonSerializer.Deserialize<List<KnownAddress>>(File.ReadAllBytes(path))!;

    [Fact]
    public void OneAccountsTenThousandAndOneAddressesDoNotEvictAnotherAccountsOwner()
    {
        using var known = new KnownAddresses(FilePath, _time);
        known.Add("alice@example.test", Owner);
        for (var i = 0; i < 10_001; i++)
        {
            _time.Advance(TimeSpan.FromTicks(1));
            known.Add("mallory@example.test", Ip(i));
        }
        Assert.True(known.Contains("alice@example.test", Owner));
        // Mallory keeps her most recent clients only.
        Assert.True(known.Contains("mallory@example.test", Ip(10_000)));
        Assert.True(known.Contains("mallory@example.test", Ip(10_001 - KnownAddresses.PerAccount)));
        Assert.False(known.Contains("mallory@example.test", Ip(10_000 - KnownAddresses.PerAccount)));
        // And after a restart.
        known.Flush();
        using var restarted = new KnownAddresses(FilePath, _time);
        Assert.True(restarted.Contains("alice@example.test", Owner));
        Assert.Equal(KnownAddresses.PerAccount + 1, Read(FilePath).Count);
    }

    [Fact]
    public void AccountsBeyondTheUserListAndItsSpareGoOldestFirst()
    {
        using var known = new KnownAddresses(FilePath, _time, accounts: () => 5);
        var max = 5 + KnownAddresses.SpareAccounts;
        for (var i = 0; i < max + 3; i++)
        {
            _time.Advance(TimeSpan.FromTicks(1));
            known.Add($"user{i}@example.test", Owner);
        }
        Assert.Equal(max, known.Accounts);
        Assert.False(known.Contains("user0@example.test", Owner));
        Assert.False(known.Contains("user2@example.test", Owner));
        Assert.True(known.Contains("user3@example.test", Owner));
        Assert.True(known.Contains($"user{max + 2}@example.test", Owner));
    }

    [Fact]
    public void ABurstOfLoginsIsWrittenOnceAfterTheDelay()
    {
        using var known = new KnownAddresses(FilePath, _time);
        for (var i = 0; i < 100; i++)
        {
            known.Add($"user{i}@example.test", Ip(i));
        }
        Assert.False(File.Exists(FilePath)); // nothing written under the login's feet
        _time.Advance(KnownAddresses.WriteDelay);
        Assert.Equal(1, known.Writes);
        Assert.Equal(100, Read(FilePath).Count);
        // Nothing changed: no more writes; a login seen within the day is no change.
        known.Add("user1@example.test", Ip(1));
        _time.Advance(KnownAddresses.WriteDelay * 5);
        Assert.Equal(1, known.Writes);
    }

    [Fact]
    public async Task ALoginDuringAWriteWaitsForNoDiskAndIsWrittenByTheNextWrite()
    {
        using var durability = new BlockingDurability();
        using var known = new KnownAddresses(FilePath, _time, durability: durability);
        known.Add("alice@example.test", Owner);
        // The timer's write blocks in its fsync (on another thread: FakeTimeProvider runs the timer in Advance).
        var writing = Task.Run(() => _time.Advance(KnownAddresses.WriteDelay));
        Assert.True(durability.Entered.Wait(TimeSpan.FromSeconds(30)));
        // The login path does not wait for it (the old code wrote under the same lock as Contains and Add).
        var login = Task.Run(() =>
        {
            known.Add("bob@example.test", Owner);
            return known.Contains("bob@example.test", Owner);
        });
        Assert.True(await login.WaitAsync(TimeSpan.FromSeconds(10)), "a login waited for the file write");
        durability.Release.Set();
        await writing.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, known.Writes);
        Assert.Single(Read(FilePath)); // the write in flight had alice only
        _time.Advance(KnownAddresses.WriteDelay);
        Assert.Equal(2, known.Writes);
        Assert.Equal(2, Read(FilePath).Count);
    }

    [Fact]
    public void AFailedWriteIsReportedAndTheNextChangeWritesAgain()
    {
        var durability = new FailingOnceDurability();
        var failures = new List<string>();
        using var known = new KnownAddresses(FilePath, _time, durability: durability, writeFailed: failures.Add);
        known.Add("alice@example.test", Owner);
        _time.Advance(KnownAddresses.WriteDelay);
        Assert.Single(failures);
        Assert.False(File.Exists(FilePath));
        // No retry every second on a full disk: the next change writes (with what the failed write had).
        _time.Advance(KnownAddresses.WriteDelay * 5);
        Assert.Single(failures);
        known.Add("bob@example.test", Owner);
        _time.Advance(KnownAddresses.WriteDelay);
        Assert.Equal(2, Read(FilePath).Count);
    }

    [Fact]
    public void FlushWritesAtOnceAndAnOldFileIsTrimmedPerAccount()
    {
        var now = _time.GetUtcNow();
        var old = Enumerable.Range(0, 30).Select(i => new KnownAddress("mallory@example.test", $"10.0.0.{i}", now.AddMinutes(i - 60)))
            .Append(new KnownAddress("alice@example.test", "192.0.2.50", now.AddMinutes(-90)))
            .Append(new KnownAddress("carol@example.test", "192.0.2.51", now - KnownAddresses.KeptFor)).ToList();
        File.WriteAllBytes(FilePath, JsonSerializer.SerializeToUtf8Bytes(old));
        using var known = new KnownAddresses(FilePath, _time);
        Assert.True(known.Contains("alice@example.test", Owner));
        Assert.False(known.Contains("mallory@example.test", IPAddress.Parse("10.0.0.9")));
        Assert.True(known.Contains("mallory@example.test", IPAddress.Parse("10.0.0.10")));
        Assert.Equal(2, known.Accounts); // carol's login is thirty days old
        known.Add("dave@example.test", Owner);
        known.Flush();
        Assert.Equal(1, known.Writes);
        Assert.Equal(KnownAddresses.PerAccount + 2, Read(FilePath).Count);
    }

    /// <summary>Blocks the first fsync of a file until released.</summary>
    private sealed class BlockingDurability : IDurability, IDisposable
    {
        private int _calls;
        public ManualResetEventSlim Entered { get; } = new();
        public ManualResetEventSlim Release { get; } = new();

        public void BeforeWrite(string path, int count)
        {
        }

        public void FlushFile(SafeFileHandle file, string path)
        {
            if (Interlocked.Increment(ref _calls) == 1)
            {
                Entered.Set();
                Release.Wait(TimeSpan.FromSeconds(60));
            }
        }

        public void FlushDirectory(string path)
        {
        }

        public void Dispose()
        {
            Entered.Dispose();
            Release.Dispose();
        }
    }

    /// <summary>A full disk for the first write.</summary>
    private sealed class FailingOnceDurability : IDurability
    {
        private int _calls;

        public void BeforeWrite(string path, int count)
        {
            if (Interlocked.Increment(ref _calls) == 1)
            {
                throw new IOException("No space left on device");
            }
        }

        public void FlushFile(SafeFileHandle file, string path)
        {
        }

        public void FlushDirectory(string path)
        {
        }
    }
}
