namespace Postern.Server.Accounts;

/// <summary>
/// A value read from a file and read again when the file changes (SPEC §4: no restart). The check is
/// a stat at most once per <see cref="CheckInterval"/>, on use: no watcher thread, nothing to miss.
/// A new version that fails to load keeps the previous value (and reports the error).
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
    /// (that once made every account unknown for a moment after a restart).
    /// </summary>
    public ReloadingFile(string path, Func<string, T> load, T empty, Action<string, T>? loaded = null, Action<string, Exception>? failed = null)
    {
        _path = path;
        _load = load;
        _empty = empty;
        _value = empty;
        _loaded = loaded;
        _failed = failed;
        Refresh();
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

    private void Refresh(long now)
    {
        lock (_gate)
        {
            Volatile.Write(ref _nextCheck, now + (long)CheckInterval.TotalMilliseconds);
            var info = new FileInfo(_path);
            var stamp = info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1L);
            if (stamp == _stamp)
            {
                return;
            }
            try
            {
                var value = info.Exists ? _load(_path) : _empty;
                Volatile.Write(ref _value, value);
                _stamp = stamp;
                _loaded?.Invoke(_path, value);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or Configuration.ConfigurationException)
            {
                _stamp = stamp;
                _failed?.Invoke(_path, e);
            }
        }
    }
}
