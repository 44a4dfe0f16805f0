using System.Net.Security;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Listening;

/// <summary>
/// Keeps the listeners' TLS options on the certificate that is on disk now, so that a renewal
/// (certbot replacing files or the targets of its symlinks) needs no restart, and warns daily when
/// the certificate nears its expiry.
/// <para>
/// Noticing a change: a FileSystemWatcher on the folders of both files (and of their symlink
/// targets) asks for a check at once, and a stat of both files every <see cref="PollInterval"/>
/// is the fallback, since inotify misses some symlink swaps and all of them on some file systems.
/// A file's stamp is its final symlink target, modification time and length, so a rewritten file
/// and a retargeted symlink both count as a change; a check costs two lstat/stat pairs.
/// </para>
/// <para>
/// Swapping: a changed pair is loaded whole and swapped in only when the certificate and the key
/// load and belong together; otherwise the old certificate stays. Renewals write several files one
/// after another, so a pair caught half-written is reported (once, as <c>tls_reload_failed</c>)
/// only when it is still broken, unchanged, a <see cref="PollInterval"/> later. Handshakes under
/// way and established sessions keep the certificate they started with; nothing is dropped.
/// </para>
/// </summary>
public sealed class CertificateReloader : IDisposable
{
    /// <summary>How often the files are stat'ed when no watcher event comes.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    /// <summary>How often the expiry is checked after the first check at start.</summary>
    public static readonly TimeSpan ExpiryCheckInterval = TimeSpan.FromDays(1);

    // A burst of watcher events (truncate, write, close, rename) becomes one check this long after the last.
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(50);

    private readonly object _gate = new();
    // Changed only by Use (a configuration reload), under _gate.
    private string _certPath;
    private string _keyPath;
    private TimeSpan _expiryWarning;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly List<FileSystemWatcher> _watchers = [];
    private ServedCertificate _current;
    private PairStamp _servedStamp;
    private PairStamp? _brokenStamp;
    private long _brokenSince;
    private PairStamp? _reportedStamp;
    private ITimer? _poll;
    private ITimer? _expiry;
    private bool _disposed;

    /// <summary>Loads the certificate of <paramref name="options"/> (generating the --dev one first if asked); throws when it cannot.</summary>
    public CertificateReloader(PosternOptions options, ILogger logger, TimeProvider time)
        : this(TlsCertificates.Prepare(options), options.Tls.ExpiryWarning, logger, time)
    {
    }

    /// <summary>Loads the pair at once; throws when it cannot (a server does not start without its certificate).</summary>
    public CertificateReloader((string Cert, string Key) paths, TimeSpan expiryWarning, ILogger logger, TimeProvider time)
    {
        (_certPath, _keyPath) = paths;
        _expiryWarning = expiryWarning;
        _logger = logger;
        _time = time;
        _servedStamp = PairStamp.Of(_certPath, _keyPath);
        _current = TlsCertificates.Load(_certPath, _keyPath);
        ServerOptions = TlsCertificates.ServerOptions(_current.Context);
    }

    /// <summary>The options every handshake uses; its certificate context is replaced on reload.</summary>
    public SslServerAuthenticationOptions ServerOptions { get; }

    /// <summary>The certificate handshakes use now.</summary>
    public ServedCertificate Current => Volatile.Read(ref _current);

    /// <summary>Logs the certificate, checks its expiry, and starts watching (the files) and the daily expiry check (on the injected clock).</summary>
    public void Start()
    {
        var c = Current;
        Log.TlsLoaded(_logger, _certPath, c.Subject, c.NotAfterText, c.Fingerprint);
        CheckExpiry();
        lock (_gate)
        {
            if (_disposed || _poll is not null)
            {
                return;
            }
            // The poll is about the disk, not about protocol time, so it runs on the system clock:
            // a test's fake clock must neither stop it nor, advanced by days, fire it 86,400 times.
            _poll = TimeProvider.System.CreateTimer(_ => CheckFiles(), null, PollInterval, PollInterval);
            _expiry = _time.CreateTimer(_ => CheckExpiry(), null, ExpiryCheckInterval, ExpiryCheckInterval);
            Watch();
        }
    }

    /// <summary>
    /// Compares the files with the pair now served and swaps in a changed pair that loads.
    /// True when it swapped. Called by the poll, after watcher events, and by tests.
    /// </summary>
    public bool CheckFiles()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return false;
            }
            var before = PairStamp.Of(_certPath, _keyPath);
            if (before == _servedStamp)
            {
                _brokenStamp = null; // put back as it was: nothing to report
                return false;
            }
            if (before == _reportedStamp)
            {
                return false; // reported once already; the next change is tried again
            }
            ServedCertificate loaded;
            try
            {
                loaded = TlsCertificates.Load(_certPath, _keyPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                var now = Environment.TickCount64;
                if (before != _brokenStamp)
                {
                    // Perhaps caught between the certificate and the key: look again before saying so.
                    _brokenStamp = before;
                    _brokenSince = now;
                }
                else if (now - _brokenSince >= (long)PollInterval.TotalMilliseconds)
                {
                    _reportedStamp = before;
                    _brokenStamp = null;
                    Log.TlsReloadFailed(_logger, _certPath, _keyPath, $"{e.Message.TrimEnd('.')}; still serving {Current.Subject} (fingerprint {Current.Fingerprint})");
                }
                return false;
            }
            if (PairStamp.Of(_certPath, _keyPath) != before)
            {
                return false; // written to while being read: the next check reads the finished files
            }
            _servedStamp = before;
            _brokenStamp = null;
            _reportedStamp = null;
            Volatile.Write(ref _current, loaded);
            // The next handshake copies the options, and with them this context.
            ServerOptions.ServerCertificateContext = loaded.Context;
            Log.TlsReloaded(_logger, _certPath, loaded.Subject, loaded.NotAfterText, loaded.Fingerprint);
        }
        CheckExpiry();
        return true;
    }

    /// <summary>
    /// Serves <paramref name="loaded"/>, the pair at <paramref name="paths"/>, from the next handshake
    /// on, and watches those files from now on: a configuration reload that changed Tls. The caller
    /// loaded the pair first (TlsCertificates.Load), so a pair that does not load never gets here and
    /// the reload is refused instead.
    /// </summary>
    public void Use((string Cert, string Key) paths, ServedCertificate loaded, TimeSpan expiryWarning)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            var moved = paths != (_certPath, _keyPath);
            (_certPath, _keyPath) = paths;
            _expiryWarning = expiryWarning;
            _servedStamp = PairStamp.Of(_certPath, _keyPath);
            _brokenStamp = null;
            _reportedStamp = null;
            Volatile.Write(ref _current, loaded);
            ServerOptions.ServerCertificateContext = loaded.Context;
            if (moved && _poll is not null)
            {
                foreach (var w in _watchers)
                {
                    w.Dispose();
                }
                _watchers.Clear();
                Watch();
            }
        }
        Log.TlsReloaded(_logger, paths.Cert, loaded.Subject, loaded.NotAfterText, loaded.Fingerprint);
        CheckExpiry();
    }

    /// <summary>
    /// Logs <c>tls_certificate_expiring</c> (a warning) when the certificate served expires within
    /// Tls.ExpiryWarning, <c>tls_certificate_expired</c> (an error) once it has expired.
    /// </summary>
    public void CheckExpiry()
    {
        var c = Current;
        var left = c.NotAfter - _time.GetUtcNow();
        var days = (int)Math.Floor(left.TotalDays);
        if (left <= TimeSpan.Zero)
        {
            Log.TlsCertificateExpired(_logger, _certPath, c.Subject, c.NotAfterText, days, c.Fingerprint);
        }
        else if (left <= _expiryWarning)
        {
            Log.TlsCertificateExpiring(_logger, _certPath, c.Subject, c.NotAfterText, days, c.Fingerprint);
        }
    }

    /// <summary>Watches the folders of both files and of their final symlink targets (certbot's live/ and archive/).</summary>
    private void Watch()
    {
        var folders = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in new[] { _certPath, _keyPath })
        {
            folders.Add(Path.GetDirectoryName(Path.GetFullPath(path))!);
            if (PairStamp.FinalTarget(path) is { } target && target != path)
            {
                folders.Add(Path.GetDirectoryName(Path.GetFullPath(target))!);
            }
        }
        foreach (var folder in folders)
        {
            FileSystemWatcher? watcher = null;
            try
            {
                watcher = new FileSystemWatcher(folder)
                {
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
                };
                watcher.Changed += (_, _) => Soon();
                watcher.Created += (_, _) => Soon();
                watcher.Deleted += (_, _) => Soon();
                watcher.Renamed += (_, _) => Soon();
                watcher.EnableRaisingEvents = true;
                _watchers.Add(watcher);
            }
            catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException or UnauthorizedAccessException)
            {
                // No inotify left, or a folder we may not watch: the poll alone still notices every change.
                watcher?.Dispose();
            }
        }
    }

    /// <summary>A watcher saw something: check shortly, once the burst of events is over.</summary>
    private void Soon()
    {
        lock (_gate)
        {
            if (!_disposed)
            {
                _poll?.Change(Debounce, PollInterval);
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            foreach (var w in _watchers)
            {
                w.Dispose();
            }
            _watchers.Clear();
            _poll?.Dispose();
            _expiry?.Dispose();
        }
    }

    /// <summary>What a stat says about the two files; equal stamps mean unchanged files.</summary>
    private readonly record struct PairStamp(FileStamp Cert, FileStamp Key)
    {
        public static PairStamp Of(string cert, string key) => new(FileStamp.Of(cert), FileStamp.Of(key));

        /// <summary>Where a chain of symlinks ends (the path itself when it is no link), or null when it cannot be followed.</summary>
        public static string? FinalTarget(string path)
        {
            try
            {
                return File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }
    }

    private readonly record struct FileStamp(string? Target, DateTime Written, long Length)
    {
        public static FileStamp Of(string path)
        {
            var target = PairStamp.FinalTarget(path);
            try
            {
                var info = new FileInfo(target ?? path);
                return info.Exists ? new FileStamp(target, info.LastWriteTimeUtc, info.Length) : new FileStamp(target, DateTime.MinValue, -1);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return new FileStamp(target, DateTime.MinValue, -2);
            }
        }
    }
}
