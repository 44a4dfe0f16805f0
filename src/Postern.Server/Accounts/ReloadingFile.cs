namespace Postern.Server.Accounts;

/// <summary>
/// A value read from a file and read again when the file changes (SPEC §4: no restart). The check is
/// a stat at most once per <see cref="CheckInterval"/>, on use: no watcher thread, nothing to miss.
/// A new version that fails to load keeps the previous value (and reports the error). The path may
/// be a folder (the DKIM keys): it then counts as changed when a file in it is added, removed or written.
/// </summary>
public sealed class ReloadingFile<T>
    where T : class
{
    private readonly object _gate = new();
    private readonly string _path;
    private readonly Func<string, T> _load;
    private readonly T _empty;
    private readonly Action<string, T>? _loaded;
    private readonly Action<string, Exception>? _failed;
    private T _value;
    private (DateTime, long) _stamp = (DateTime.MinValue, -1);
    private long _nextCheck;

    /// <summary>
    /// Loads the file at once: a reader must never see the empty value while the first load runs
    /// (that once made every account unknown for a moment after a restart). With
    /// <paramref name="mustLoadFirst"/>, a first load that fails throws (the start stops, naming the
    /// file); later failures keep the value in use, as always.
    /// </summary>
    public ReloadingFile(string path, Func<string, T> load, T empty, Action<string, T>? loaded = null, Action<string, Exception>? failed = null,
        bool mustLoadFirst = false)
    {
        _path = path;
        _load = load;
        _empty = empty;
        _value = empty;
        _loaded = loaded;
        _failed = failed;
        Refresh(Environment.TickCount64, rethrow: mustLoadFirst);
    }

    public static TimeSpan CheckInterval { get; set; } = TimeSpan.FromMilliseconds(500);
    public string Path => _path;

    public T Value
    {
        get
        {
            var now = Environment.TickCount64;
            if (now >= Volatile.Read(ref _nextCheck))
            {
                Refresh(now);
            }
            return Volatile.Read(ref _value);
        }
    }

    /// <summary>Forces a check now (tests, and after the CLI changed the file in this process).</summary>
    public void Refresh() => Refresh(Environment.TickCount64);

    private void Refresh(long now, bool rethrow = false)
    {
        lock (_gate)
        {
            Volatile.Write(ref _nextCheck, now + (long)CheckInterval.TotalMilliseconds);
            var (exists, stamp) = Stamp(_path);
            if (stamp == _stamp)
            {
                return;
            }
            try
            {
                var value = exists ? _load(_path) : _empty;
                Volatile.Write(ref _value, value);
                _stamp = stamp;
                _loaded?.Invoke(_path, value);
            }
            catch (Exception e) when (!rethrow && e is IOException or UnauthorizedAccessException or FormatException or Configuration.ConfigurationException)
            {
                _stamp = stamp;
                _failed?.Invoke(_path, e);
            }
        }
    }

    // A file: its time and length. A folder: the latest time and a hash over every entry's name, time, length and mode.
    private static (bool Exists, (DateTime, long)) Stamp(string path)
    {
        var file = new FileInfo(path);
        if (file.Exists)
        {
            return (true, (file.LastWriteTimeUtc, file.Length));
        }
        var folder = new DirectoryInfo(path);
        if (!folder.Exists)
        {
            return (false, (DateTime.MinValue, -1L));
        }
        var latest = folder.LastWriteTimeUtc;
        var hash = new HashCode();
        foreach (var entry in folder.EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            latest = entry.LastWriteTimeUtc > latest ? entry.LastWriteTimeUtc : latest;
            hash.Add(entry.Name, StringComparer.Ordinal);
            hash.Add(entry.LastWriteTimeUtc);
            hash.Add(entry.Length);
            hash.Add(OperatingSystem.IsWindows() ? 0 : (int)entry.UnixFileMode); // a chmod 600 that makes a key usable
        }
        return (true, (latest, hash.ToHashCode()));
    }
}
