using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Postern.Server.Configuration;
using Postern.Server.Listening;

namespace Postern.Server.Tests;

/// <summary>
/// Issue 4 item 7: a certificate nearing expiry is logged at start and daily (on an injected clock);
/// an expired one is an error. Also the reloader's swap, on its own, without a server.
/// </summary>
public sealed class TlsCertificateExpiryWarnings : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-tls-").FullName;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly EventLog _log = new();

    private string CertPath => Path.Combine(_dir, "cert.pem");
    private string KeyPath => Path.Combine(_dir, "key.pem");

    [Fact]
    public void NoWarningUntilTheWindowThenOneEachDayThenAnErrorOnceExpired()
    {
        // 30 days and 12 hours left at start: Let's Encrypt's client would be renewing now.
        WritePair("mail.example.test", _time.GetUtcNow() + TimeSpan.FromDays(30.5));
        using var reloader = Start(TimeSpan.FromDays(21));
        Assert.Single(_log.Named("tls_loaded"));
        Assert.Empty(_log.Named("tls_certificate_expiring"));

        // Day 9: 21.5 days left, still outside the 21-day window.
        _time.Advance(TimeSpan.FromDays(9));
        Assert.Empty(_log.Named("tls_certificate_expiring"));

        // Day 10: 20.5 days left. One warning, with the whole days left.
        _time.Advance(TimeSpan.FromDays(1));
        var first = Assert.Single(_log.Named("tls_certificate_expiring"));
        Assert.Equal(LogLevel.Warning, first.Level);
        Assert.Equal("20", first["days_left"]);
        Assert.Equal("CN=mail.example.test", first["subject"]);
        Assert.Equal(reloader.Current.Fingerprint, first["fingerprint"]);

        // Then once a day, never more often.
        _time.Advance(TimeSpan.FromHours(23));
        Assert.Single(_log.Named("tls_certificate_expiring"));
        _time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(2, _log.Named("tls_certificate_expiring").Count);
        Assert.Equal("19", _log.Named("tls_certificate_expiring")[^1]["days_left"]);
        _time.Advance(TimeSpan.FromDays(19));
        Assert.Equal(21, _log.Named("tls_certificate_expiring").Count);
        Assert.Equal("0", _log.Named("tls_certificate_expiring")[^1]["days_left"]);
        Assert.Empty(_log.Named("tls_certificate_expired"));

        // Day 31: expired half a day ago. An error, daily, and no more warnings.
        _time.Advance(TimeSpan.FromDays(1));
        var expired = Assert.Single(_log.Named("tls_certificate_expired"));
        Assert.Equal(LogLevel.Error, expired.Level);
        Assert.Equal("-1", expired["days_left"]);
        Assert.Equal(21, _log.Named("tls_certificate_expiring").Count);
        _time.Advance(TimeSpan.FromDays(1));
        Assert.Equal(2, _log.Named("tls_certificate_expired").Count);
    }

    [Fact]
    public void ACertificateAlreadyNearItsEndIsReportedAtStart()
    {
        WritePair("mail.example.test", _time.GetUtcNow() + TimeSpan.FromDays(3.25));
        using var reloader = Start(TimeSpan.FromDays(21));
        var warning = Assert.Single(_log.Named("tls_certificate_expiring"));
        Assert.Equal("3", warning["days_left"]);
        Assert.Equal(reloader.Current.NotAfterText, warning["not_after"]);
    }

    [Fact]
    public void AnExpiredCertificateIsAnErrorAtStart()
    {
        WritePair("old.example.test", _time.GetUtcNow() - TimeSpan.FromDays(2.5));
        using var reloader = Start(TimeSpan.FromDays(21));
        Assert.Equal("-3", Assert.Single(_log.Named("tls_certificate_expired"))["days_left"]);
        Assert.Empty(_log.Named("tls_certificate_expiring"));
    }

    [Fact]
    public void ZeroTurnsTheWarningOffButNotTheError()
    {
        WritePair("mail.example.test", _time.GetUtcNow() + TimeSpan.FromDays(1.5));
        using var reloader = Start(TimeSpan.Zero);
        _time.Advance(TimeSpan.FromDays(1));
        Assert.Empty(_log.Named("tls_certificate_expiring"));
        _time.Advance(TimeSpan.FromDays(1));
        Assert.Single(_log.Named("tls_certificate_expired"));
    }

    [Fact]
    public void ARenewedCertificateStopsTheWarnings()
    {
        WritePair("mail.example.test", _time.GetUtcNow() + TimeSpan.FromDays(10.5));
        using var reloader = Start(TimeSpan.FromDays(21));
        Assert.Single(_log.Named("tls_certificate_expiring"));
        var before = reloader.ServerOptions.ServerCertificateContext;

        var renewed = WritePair("mail.example.test", _time.GetUtcNow() + TimeSpan.FromDays(90));
        // The watcher or the poll may have been quicker than this call; either way the pair is swapped once.
        reloader.CheckFiles();
        Assert.Equal(renewed, reloader.Current.Fingerprint);
        var reloaded = Assert.Single(_log.Named("tls_reloaded"));
        Assert.Equal(renewed, reloaded["fingerprint"]);
        Assert.NotSame(before, reloader.ServerOptions.ServerCertificateContext);
        Assert.Same(reloader.Current.Context, reloader.ServerOptions.ServerCertificateContext);
        Assert.False(reloader.CheckFiles()); // nothing changed since

        _time.Advance(TimeSpan.FromDays(1));
        Assert.Single(_log.Named("tls_certificate_expiring")); // only the one from before the renewal
    }

    [Fact]
    public void AKeyThatIsNotTheCertificatesKeepsTheOldOneAndIsReportedOnceItStays()
    {
        WritePair("a.example.test", _time.GetUtcNow() + TimeSpan.FromDays(90));
        using var reloader = Start(TimeSpan.FromDays(21));
        var served = reloader.Current;

        // Only the certificate is new so far.
        var (certPem, _, _) = MakePair("b.example.test", _time.GetUtcNow() + TimeSpan.FromDays(90));
        File.WriteAllText(CertPath, certPem);
        Assert.False(reloader.CheckFiles());
        Assert.Same(served, reloader.Current);
        Assert.Same(served.Context, reloader.ServerOptions.ServerCertificateContext);
        Assert.Empty(_log.Named("tls_reload_failed")); // perhaps the key is on its way

        // Still so a poll interval later: reported, once.
        Thread.Sleep(CertificateReloader.PollInterval + TimeSpan.FromMilliseconds(100));
        Assert.False(reloader.CheckFiles());
        Assert.False(reloader.CheckFiles());
        var failed = Assert.Single(_log.Named("tls_reload_failed"));
        Assert.Equal(LogLevel.Error, failed.Level);
        Assert.Contains("still serving CN=a.example.test", failed["reason"], StringComparison.Ordinal);
        Assert.Same(served, reloader.Current);
    }

    [Fact]
    public void ServerOptionsAllowOnlyTlsTwelveAndThirteenWithTheModernSuites()
    {
        WritePair("a.example.test", _time.GetUtcNow() + TimeSpan.FromDays(90));
        using var reloader = Start(TimeSpan.FromDays(21));
        var options = reloader.ServerOptions;
        Assert.Equal(System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13, options.EnabledSslProtocols);
        Assert.False(options.AllowRenegotiation);
        if (OperatingSystem.IsLinux()) // the one platform the list applies to (OpenSSL); the servers run there
        {
            Assert.NotNull(options.CipherSuitesPolicy);
            Assert.Equal(TlsCertificates.CipherSuites, options.CipherSuitesPolicy.AllowedCipherSuites!);
        }
        foreach (var suite in TlsCertificates.CipherSuites)
        {
            var name = suite.ToString();
            Assert.True(name.StartsWith("TLS_AES_", StringComparison.Ordinal) || name.StartsWith("TLS_CHACHA20_", StringComparison.Ordinal)
                || (name.StartsWith("TLS_ECDHE_", StringComparison.Ordinal) && (name.Contains("_GCM_", StringComparison.Ordinal) || name.Contains("_CHACHA20_POLY1305_", StringComparison.Ordinal))), name);
        }
    }

    [Theory]
    [InlineData("-1.00:00:00", false)]
    [InlineData("366.00:00:00", false)]
    [InlineData("00:00:00", true)]
    [InlineData("30.00:00:00", true)]
    public void ExpiryWarningIsValidated(string value, bool valid)
    {
        WritePair("a.example.test", _time.GetUtcNow() + TimeSpan.FromDays(90));
        var options = new PosternOptions
        {
            Hostname = "mail.example.test",
            DataDirectory = _dir,
            Domains = ["example.test"],
            Listeners = [new ListenerOptions { Name = "mx", Endpoint = "127.0.0.1:2525", Role = ListenerRole.Mx }],
            Tls = new TlsOptions { CertificatePath = CertPath, KeyPath = KeyPath, ExpiryWarning = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture) },
        };
        var errors = ConfigurationLoader.Validate(options);
        Assert.Equal(valid, !errors.Any(e => e.StartsWith("Tls.ExpiryWarning:", StringComparison.Ordinal)));
        Assert.True(valid == (errors.Count == 0), string.Join("; ", errors));
    }

    private CertificateReloader Start(TimeSpan warning)
    {
        var reloader = new CertificateReloader((CertPath, KeyPath), warning, _log, _time);
        reloader.Start();
        return reloader;
    }

    /// <summary>Writes a new pair (key first); returns its fingerprint.</summary>
    private string WritePair(string name, DateTimeOffset notAfter)
    {
        var (cert, key, fingerprint) = MakePair(name, notAfter);
        File.WriteAllText(KeyPath, key);
        File.WriteAllText(CertPath, cert);
        return fingerprint;
    }

    private static (string Cert, string Key, string Fingerprint) MakePair(string name, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(notAfter.AddDays(-90), notAfter);
        return (cert.ExportCertificatePem() + "\n", key.ExportPkcs8PrivateKeyPem() + "\n", cert.GetCertHashString(HashAlgorithmName.SHA256));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The events logged, by name, with their keys.</summary>
    private sealed class EventLog : ILogger
    {
        private readonly List<Event> _events = [];

        public sealed record Event(string Name, LogLevel Level, IReadOnlyDictionary<string, string> Keys)
        {
            public string this[string key] => Keys[key];
        }

        public List<Event> Named(string name)
        {
            lock (_events)
            {
                return _events.Where(e => e.Name == name).ToList();
            }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var keys = (state as IReadOnlyList<KeyValuePair<string, object?>> ?? [])
                .ToDictionary(kv => kv.Key, kv => kv.Value is IFormattable f ? f.ToString(null, System.Globalization.CultureInfo.InvariantCulture) : kv.Value?.ToString() ?? "");
            lock (_events)
            {
                _events.Add(new Event(eventId.Name ?? "", logLevel, keys));
            }
        }
    }
}
