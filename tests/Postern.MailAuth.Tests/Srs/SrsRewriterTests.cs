using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Postern.MailAuth.Srs;

namespace Postern.MailAuth.Tests.Srs;

/// <summary>
/// The Sender Rewriting Scheme as libsrs2 (PostSRSd 1.x) has it: the exact bytes PostSRSd 1.10 wrote,
/// round trips through one and two forwarders, every kind of tampering, the 21-day limit and the
/// 1024-day wrap of the timestamp, and the secret file. PostSRSd itself is the peer in
/// Postern.IntegrationTests (MailAuth/SrsPostsrsdInterop).
/// </summary>
public sealed class SrsRewriterTests : IDisposable
{
    // What Debian's postsrsd 1.10 answered with this secret (-d fwd.example) at this second,
    // recorded through its tcp_table ports: the byte-for-byte reference.
    private const string GoldenSecret = "c2VjcmV0LXRlc3Qtc2VjcmV0";
    private const long GoldenUnixSeconds = 1_795_916_421; // day 20786, 306 mod 1024: "JS"

    private const string Secret = "bm90LXRoZS1yZWFsLXNlY3JldC1vbmx5LWZvci10ZXN0cw==";
    private const string Fwd = "fwd.example";

    private readonly string _dir = Directory.CreateTempSubdirectory("postern-srs-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static DateTimeOffset Day(long day, int hour = 12) => DateTimeOffset.UnixEpoch.AddDays(day).AddHours(hour);

    private static SrsRewriter At(FakeTimeProvider clock, string secret = Secret, TimeSpan? maxAge = null) => new(secret, clock, maxAge);

    private static string Forwarded(SrsRewriter srs, string sender, string domain = Fwd) =>
        srs.Forward(sender, domain) ?? throw new Xunit.Sdk.XunitException($"{sender} was not rewritten");

    [Theory]
    [InlineData("Alice.X=y+z@Orig.Example", "SRS0=M0cJ=JS=Orig.Example=Alice.X=y+z@fwd.example")]
    [InlineData("SRS0=abcd=XY=orig.example=alice@fwd1.example", "SRS1=QkFq=fwd1.example==abcd=XY=orig.example=alice@fwd.example")]
    [InlineData("SRS1=wxyz=fwd1.example==abcd=XY=orig.example=alice@fwd2.example", "SRS1=QkFq=fwd1.example==abcd=XY=orig.example=alice@fwd.example")]
    public void WritesWhatPostsrsdWrites(string sender, string expected)
    {
        var srs = At(new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(GoldenUnixSeconds)), GoldenSecret);
        Assert.Equal(expected, srs.Forward(sender, Fwd));
    }

    [Theory]
    [InlineData(0, "AA")]
    [InlineData(1, "AB")]
    [InlineData(33, "BB")]
    [InlineData(1023, "77")]
    [InlineData(1024, "AA")]
    [InlineData(20786, "JS")]
    public void TheTimestampIsTheDayModulo1024InBase32(long day, string stamp)
    {
        var forwarded = Forwarded(At(new FakeTimeProvider(Day(day, hour: 23))), "alice@orig.example");
        Assert.Equal(stamp, forwarded.Split('=')[2]);
    }

    [Theory]
    [InlineData("alice@orig.example")]
    [InlineData("Alice.Smith@Orig.Example")]
    [InlineData("a=b@orig.example")]
    [InlineData("a+tag@orig.example")]
    [InlineData("x=y+z=@sub.orig.example")]
    [InlineData("=lead@orig.example")]
    [InlineData("SRS@orig.example")]
    [InlineData("srs2=x@orig.example")]
    [InlineData("jos\u00e9@\u00e9xample.org")]
    public void Srs0RoundTrips(string sender)
    {
        var srs = At(new FakeTimeProvider(Day(20786)));
        var forwarded = Forwarded(srs, sender);
        Assert.StartsWith("SRS0=", forwarded, StringComparison.Ordinal);
        Assert.EndsWith("@" + Fwd, forwarded, StringComparison.Ordinal);
        Assert.Equal(new SrsReverse.Valid(sender), srs.Reverse(forwarded));
    }

    [Fact]
    public void Srs1RoundTripsThroughEachForwarderBackToTheFirst()
    {
        var clock = new FakeTimeProvider(Day(20786));
        // Three forwarders, each with its own secret, as on the Internet.
        var first = At(clock, "first-forwarders-secret");
        var second = At(clock, "second-forwarders-secret");
        var third = At(clock, "third-forwarders-secret");
        const string sender = "a=b+c@orig.example";

        var srs0 = Forwarded(first, sender, "fwd1.example");
        var srs1 = Forwarded(second, srs0, "fwd2.example");
        Assert.StartsWith("SRS1=", srs1, StringComparison.Ordinal);
        Assert.Contains("=fwd1.example==", srs1, StringComparison.Ordinal);
        Assert.EndsWith("@fwd2.example", srs1, StringComparison.Ordinal);
        // The third keeps the first forwarder, not the second: a bounce skips the middle.
        var again = Forwarded(third, srs1, "fwd3.example");
        Assert.StartsWith("SRS1=", again, StringComparison.Ordinal);
        Assert.Contains("=fwd1.example==", again, StringComparison.Ordinal);
        Assert.EndsWith("@fwd3.example", again, StringComparison.Ordinal);

        Assert.Equal(new SrsReverse.Valid(srs0), second.Reverse(srs1));
        Assert.Equal(new SrsReverse.Valid(srs0), third.Reverse(again));
        Assert.Equal(new SrsReverse.Valid(sender), first.Reverse(srs0));
        // Each hash is the secret holder's own.
        Assert.IsType<SrsReverse.Invalid>(third.Reverse(srs1));
        Assert.IsType<SrsReverse.Invalid>(second.Reverse(srs0));
    }

    [Theory]
    [InlineData('+')]
    [InlineData('-')]
    public void OtherSeparatorsAfterTheTagAreReadAndKept(char separator)
    {
        var clock = new FakeTimeProvider(Day(20786));
        var first = At(clock, "first-forwarders-secret");
        var ours = At(clock);
        // PostSRSd -a+ or -a- writes "SRS0+" or "SRS0-"; the separator is outside the hash.
        var srs0 = string.Concat("SRS0", separator.ToString(), Forwarded(first, "alice@orig.example", "fwd1.example").AsSpan(5));
        Assert.Equal(new SrsReverse.Valid("alice@orig.example"), first.Reverse(srs0));

        var srs1 = Forwarded(ours, srs0);
        Assert.Contains($"=fwd1.example={separator}", srs1, StringComparison.Ordinal);
        Assert.Equal(new SrsReverse.Valid(srs0), ours.Reverse(srs1));
        Assert.Equal(new SrsReverse.Valid(srs0), ours.Reverse(string.Concat("SRS1", separator.ToString(), srs1.AsSpan(5))));
    }

    [Fact]
    public void TamperingWithAnyHashedPartIsCaught()
    {
        var srs = At(new FakeTimeProvider(Day(20786)));
        var good = Forwarded(srs, "alice@orig.example"); // SRS0=HHHH=TT=orig.example=alice@fwd.example
        var parts = good.Split('=');
        var hash = parts[1];
        var otherHash = string.Concat(hash.AsSpan(0, 3), hash[3] == 'A' ? "B" : "A");
        string[] tampered =
        [
            good.Replace(hash, otherHash, StringComparison.Ordinal),
            good.Replace("=orig.example=", "=evil.example=", StringComparison.Ordinal),
            good.Replace("=alice@", "=mallory@", StringComparison.Ordinal),
            good.Replace($"={parts[2]}=", "=AA=", StringComparison.Ordinal),
            good.Replace(hash, hash[..3], StringComparison.Ordinal),
            good.Replace(hash, hash + "A", StringComparison.Ordinal),
        ];
        foreach (var address in tampered)
        {
            Assert.NotEqual(good, address);
            Assert.Equal(new SrsReverse.Invalid("SRS hash does not match"), srs.Reverse(address));
        }
        Assert.Equal(new SrsReverse.Valid("alice@orig.example"), srs.Reverse(good));
    }

    [Fact]
    public void TamperingWithAnSrs1IsCaught()
    {
        var clock = new FakeTimeProvider(Day(20786));
        var srs = At(clock);
        var srs0 = Forwarded(At(clock, "first-forwarders-secret"), "alice@orig.example", "fwd1.example");
        var good = Forwarded(srs, srs0);
        Assert.Equal(new SrsReverse.Valid(srs0), srs.Reverse(good));
        foreach (var address in new[]
        {
            good.Replace("=fwd1.example=", "=evil.example=", StringComparison.Ordinal),
            good.Replace("=alice@", "=mallory@", StringComparison.Ordinal),
            good.Replace("=orig.example=", "=evil.example=", StringComparison.Ordinal),
        })
        {
            Assert.Equal(new SrsReverse.Invalid("SRS hash does not match"), srs.Reverse(address));
        }
    }

    [Fact]
    public void TheHashAndTagAreReadWithoutRegardToCase()
    {
        var srs = At(new FakeTimeProvider(Day(20786)));
        var forwarded = Forwarded(srs, "alice@orig.example");
        // Some systems fold local parts; libsrs2 compares the hash with strncasecmp.
        Assert.Equal(new SrsReverse.Valid("alice@orig.example"), srs.Reverse(forwarded.ToLowerInvariant()));
        Assert.Equal(new SrsReverse.Valid("ALICE@ORIG.EXAMPLE"), srs.Reverse(forwarded.ToUpperInvariant()));
        var hash = forwarded.Split('=')[1];
        var swapped = new string([.. hash.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c))]);
        Assert.Equal(new SrsReverse.Valid("alice@orig.example"), srs.Reverse(forwarded.Replace(hash, swapped, StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(20, true)]
    [InlineData(21, true)] // libsrs2: valid while now <= then + 21
    [InlineData(22, false)]
    [InlineData(500, false)]
    [InlineData(1023, false)]
    public void AnSrs0AddressLastsTwentyOneDays(int daysLater, bool valid)
    {
        var clock = new FakeTimeProvider(Day(20786, hour: 23));
        var srs = At(clock);
        var forwarded = Forwarded(srs, "alice@orig.example");
        clock.Advance(TimeSpan.FromDays(daysLater));
        var result = srs.Reverse(forwarded);
        Assert.Equal(valid ? new SrsReverse.Valid("alice@orig.example") : new SrsReverse.Invalid("SRS address expired (older than 21 days)"), result);
    }

    [Theory]
    [InlineData(10, true)]
    [InlineData(21, true)]
    [InlineData(22, false)]
    [InlineData(1024, true)] // two bits of day: an address 1024 days old looks new again, as in libsrs2
    [InlineData(1046, false)]
    public void TheAgeIsCountedAcrossThe1024DayWrap(int daysLater, bool valid)
    {
        // Day 21500 is 1020 modulo 1024 (stamp "74"); ten days later the day is 6 modulo 1024.
        const long start = 21500;
        Assert.Equal(1020, start % 1024);
        var clock = new FakeTimeProvider(Day(start));
        var srs = At(clock);
        var forwarded = Forwarded(srs, "alice@orig.example");
        Assert.Equal("74", forwarded.Split('=')[2]);
        clock.SetUtcNow(Day(start + daysLater));
        Assert.Equal(valid, srs.Reverse(forwarded) is SrsReverse.Valid);
    }

    [Fact]
    public void AStampFromTomorrowHasWrappedAndExpired()
    {
        var forwarded = Forwarded(At(new FakeTimeProvider(Day(20787))), "alice@orig.example");
        // A clock a day behind reads tomorrow's stamp as 1023 days old (libsrs2's rule).
        var behind = At(new FakeTimeProvider(Day(20786)));
        Assert.Equal(new SrsReverse.Invalid("SRS address expired (older than 21 days)"), behind.Reverse(forwarded));
    }

    [Fact]
    public void TheMaximumAgeCanBeShortened()
    {
        var clock = new FakeTimeProvider(Day(20786));
        var srs = At(clock, maxAge: TimeSpan.FromDays(5));
        var forwarded = Forwarded(srs, "alice@orig.example");
        clock.Advance(TimeSpan.FromDays(5));
        Assert.IsType<SrsReverse.Valid>(srs.Reverse(forwarded));
        clock.Advance(TimeSpan.FromDays(1));
        Assert.Equal(new SrsReverse.Invalid("SRS address expired (older than 5 days)"), srs.Reverse(forwarded));
        Assert.Equal(TimeSpan.FromDays(21), SrsRewriter.DefaultMaxAge);
    }

    [Fact]
    public void SrsAddressesAreCheckedBeforeTheirAge()
    {
        var clock = new FakeTimeProvider(Day(20786));
        var srs = At(clock);
        var forwarded = Forwarded(srs, "alice@orig.example");
        clock.Advance(TimeSpan.FromDays(100));
        // A forgery is reported as one even when its stamp is old.
        Assert.Equal(new SrsReverse.Invalid("SRS hash does not match"), srs.Reverse(forwarded.Replace("=alice@", "=bob@", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("alice@orig.example")]
    [InlineData("postmaster")]
    [InlineData("")]
    [InlineData("SRS@fwd.example")]
    [InlineData("SRS0@fwd.example")]
    [InlineData("SRS2=abcd=AA=orig.example=alice@fwd.example")]
    [InlineData("SRS0_abcd=AA=orig.example=alice@fwd.example")]
    [InlineData("xSRS0=abcd=AA=orig.example=alice@fwd.example")]
    [InlineData("alice@SRS0=abcd=AA=orig.example")]
    public void OrdinaryAddressesAreNotSrs(string address)
    {
        var srs = At(new FakeTimeProvider(Day(20786)));
        Assert.Equal(new SrsReverse.NotSrs(), srs.Reverse(address));
    }

    [Theory]
    [InlineData("SRS0=", true)]
    [InlineData("SRS0=abcd=AA=orig.example=alice", true)]
    [InlineData("srs0+x", true)]
    [InlineData("Srs1-x", true)]
    [InlineData("SRS1=x", true)]
    [InlineData("SRS0", false)]
    [InlineData("SRS2=x", false)]
    [InlineData("SRS0_x", false)]
    [InlineData("SRSO=x", false)]
    [InlineData("alice", false)]
    [InlineData("", false)]
    public void LooksLikeSrsReadsTheTagAsLibsrs2Does(string localPart, bool expected) =>
        Assert.Equal(expected, SrsRewriter.LooksLikeSrs(localPart));

    [Theory]
    [InlineData("SRS0=@fwd.example")]
    [InlineData("SRS0=abcd@fwd.example")]
    [InlineData("SRS0=abcd=AA@fwd.example")]
    [InlineData("SRS0=abcd=AA=orig.example@fwd.example")]
    [InlineData("SRS0=abcd=AA=orig.example=@fwd.example")]
    [InlineData("SRS0=abcd=AA==alice@fwd.example")]
    [InlineData("SRS0=abcd=A1=orig.example=alice@fwd.example")] // '1' is not base32
    [InlineData("SRS0=abcd=A=orig.example=alice@fwd.example")]
    [InlineData("SRS0=abcd=AAA=orig.example=alice@fwd.example")]
    [InlineData("SRS1=@fwd.example")]
    [InlineData("SRS1=abcd@fwd.example")]
    [InlineData("SRS1=abcd=fwd1.example@fwd.example")]
    [InlineData("SRS1=abcd==x@fwd.example")]
    [InlineData("SRS1=abcd=fwd1.example=@fwd.example")]
    public void MalformedSrsAddressesAreInvalid(string address)
    {
        var srs = At(new FakeTimeProvider(Day(20786)));
        Assert.Equal(new SrsReverse.Invalid("malformed SRS address"), srs.Reverse(address));
    }

    [Theory]
    [InlineData("alice")]
    [InlineData("@orig.example")]
    [InlineData("alice@")]
    [InlineData("\"alice smith\"@orig.example")]
    [InlineData("\"a@b\"@orig.example")]
    [InlineData("alice@[192.0.2.1]")]
    [InlineData("alice@[IPv6:2001:db8::1]")]
    [InlineData("alice@fwd.example")]
    [InlineData("alice@FWD.Example")]
    [InlineData("SRS0=abcd=AA=orig.example=alice@fwd.example")]
    [InlineData("alice@orig=example")]
    [InlineData("SRS1=abcd@fwd2.example")]
    [InlineData("SRS1=abcd=fwd1.example@fwd2.example")]
    public void SendersThatCannotOrNeedNotBeRewrittenAreLeftAlone(string sender)
    {
        var srs = At(new FakeTimeProvider(Day(20786)));
        Assert.Null(srs.Forward(sender, Fwd));
    }

    [Fact]
    public void BadSecretsMaximumAgesAndDomainsAreRefused()
    {
        var clock = new FakeTimeProvider(Day(20786));
        Assert.Throws<ArgumentException>(() => new SrsRewriter("", clock));
        Assert.Throws<ArgumentException>(() => new SrsRewriter("two\nlines", clock));
        Assert.Throws<ArgumentException>(() => new SrsRewriter(new string('k', 65), clock));
        _ = new SrsRewriter(new string('k', 64), clock);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SrsRewriter(Secret, clock, TimeSpan.FromDays(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SrsRewriter(Secret, clock, TimeSpan.FromHours(36)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SrsRewriter(Secret, clock, TimeSpan.FromDays(1024)));
        _ = new SrsRewriter(Secret, clock, TimeSpan.FromDays(1023));
        var srs = new SrsRewriter(Secret, clock);
        Assert.Throws<ArgumentException>(() => srs.Forward("alice@orig.example", ""));
        Assert.Throws<ArgumentException>(() => srs.Forward("alice@orig.example", "postmaster@fwd.example"));
    }

    [Fact]
    public void TheSameSecretGivesTheSameAddressesAndAnotherDoesNot()
    {
        var clock = new FakeTimeProvider(Day(20786));
        var forwarded = Forwarded(At(clock), "alice@orig.example");
        Assert.Equal(forwarded, Forwarded(At(clock), "alice@orig.example"));
        Assert.Equal(new SrsReverse.Invalid("SRS hash does not match"), At(clock, "another secret").Reverse(forwarded));
    }

    [Fact]
    public void ASecretFileIsCreated0600AndReadBack()
    {
        var path = Path.Combine(_dir, "srs.secret");
        var secret = SrsRewriter.LoadOrCreateSecret(path);
        Assert.Equal(32, Convert.FromBase64String(secret).Length);
        Assert.Equal(secret + "\n", File.ReadAllText(path));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        Assert.Equal(secret, SrsRewriter.LoadOrCreateSecret(path));
        Assert.NotEqual(secret, SrsRewriter.LoadOrCreateSecret(Path.Combine(_dir, "other.secret")));
    }

    [Fact]
    public void AnExistingSecretFileIsReadAndNeverOverwritten()
    {
        var path = Path.Combine(_dir, "postsrsd.secret");
        // PostSRSd's file: one secret a line, the first signs.
        const string content = "  first-secret \r\nsecond-secret\n";
        File.WriteAllText(path, content);
        Assert.Equal("first-secret", SrsRewriter.LoadOrCreateSecret(path));
        Assert.Equal(content, File.ReadAllText(path));

        File.WriteAllText(path, "");
        Assert.Throws<InvalidDataException>(() => SrsRewriter.LoadOrCreateSecret(path));
        Assert.Equal("", File.ReadAllText(path));
    }

    [Fact]
    public async Task ProcessesRacingToCreateTheSecretAllGetTheSameOne()
    {
        for (var round = 0; round < 20; round++)
        {
            var path = Path.Combine(_dir, $"race{round}.secret");
            using var start = new ManualResetEventSlim();
            var secrets = new ConcurrentBag<string>();
            var racers = Enumerable.Range(0, 8).Select(_ => Task.Factory.StartNew(() =>
            {
                start.Wait();
                secrets.Add(SrsRewriter.LoadOrCreateSecret(path));
            }, TaskCreationOptions.LongRunning)).ToArray();
            start.Set();
            await Task.WhenAll(racers);
            Assert.Single(secrets.Distinct());
            Assert.Equal(secrets.First() + "\n", File.ReadAllText(path));
        }
    }
}
