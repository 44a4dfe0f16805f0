using System.Text.Json;
using System.Text.Json.Serialization;
using Postern.Server.Storage;

namespace Postern.Server.Accounts;

/// <summary>One ban: what is banned (<c>ip:192.0.2.7</c>, <c>net:2001:db8:1:2::/64</c>, <c>user:alice@example.com</c>), until when, and why.</summary>
public sealed record Ban(string Key, DateTimeOffset Since, DateTimeOffset Until, int Level, int Failures, string Reason);

/// <summary>
/// The bans of the AUTH brute-force defence, kept in DATA/bans.json so that they survive a restart
/// and `postern bans list|release` sees and changes them whether or not the server runs. Every
/// change is a read-modify-write of the whole file under an exclusive lock (bans.json.lock), written
/// to a temporary file and renamed; the server notices a change made by the CLI by the file's
/// modification time (checked at most once a second, when a ban is looked up). Expired bans stay in
/// the file for a day after they end, so that a repeat offender's next ban is longer (the level), then go.
/// Bounded: at most <see cref="Capacity"/> entries; the ones that end soonest make room.
/// </summary>
public sealed class BanList
{
    public const int Capacity = 10_000;
    private static readonly TimeSpan Memory = TimeSpan.FromDays(1);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private Dictionary<string, Ban> _bans = [];
    private (DateTime, long) _stamp = (DateTime.MinValue, -1);
    private long _nextCheck;

    private readonly Action<Ban>? _releasedElsewhere;

    /// <param name="path">DATA/bans.json.</param>
    /// <param name="time">The clock bans are measured on.</param>
    /// <param name="releasedElsewhere">Told of each ban in force that another process (`postern bans release`) lifted.</param>
    public BanList(string path, TimeProvider time, Action<Ban>? releasedElsewhere = null)
    {
        _path = path;
        _time = time;
        _releasedElsewhere = releasedElsewhere;
        lock (_gate)
        {
            Reload(force: true);
        }
    }

    public string Path => _path;

    /// <summary>The ban on <paramref name="key"/> in force now, or null.</summary>
    public Ban? Active(string key)
    {
        lock (_gate)
        {
            Reload(force: false);
            return _bans.TryGetValue(key, out var b) && b.Until > _time.GetUtcNow() ? b : null;
        }
    }

    /// <summary>The level of <paramref name="key"/>'s last ban if it is still remembered (0: none).</summary>
    public int Level(string key)
    {
        lock (_gate)
        {
            Reload(force: false);
            return _bans.TryGetValue(key, out var b) ? b.Level : 0;
        }
    }

    /// <summary>Every ban in force now, soonest ending first.</summary>
    public List<Ban> ActiveBans()
    {
        lock (_gate)
        {
            Reload(force: false);
            var now = _time.GetUtcNow();
            return _bans.Values.Where(b => b.Until > now).OrderBy(b => b.Until).ToList();
        }
    }

    /// <summary>Records a ban (replacing an older one on the same key).</summary>
    public void Add(Ban ban) => Change(bans => bans[ban.Key] = ban);

    /// <summary>Lifts the ban on <paramref name="key"/> (its level is forgotten too); false when none was in force.</summary>
    public bool Release(string key)
    {
        var released = false;
        var now = _time.GetUtcNow();
        Change(bans => released = bans.Remove(key, out var b) && b.Until > now);
        return released;
    }

    private void Change(Action<Dictionary<string, Ban>> change)
    {
        lock (_gate)
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(_path)!);
            // The lock file serializes the server and `postern bans` (flock through FileShare.None).
            using var fileLock = LockFile();
            Reload(force: true);
            var now = _time.GetUtcNow();
            var bans = _bans.Values.Where(b => now - b.Until < Memory).ToDictionary(b => b.Key);
            change(bans);
            foreach (var b in bans.Values.OrderBy(b => b.Until).Take(Math.Max(0, bans.Count - Capacity)).ToList())
            {
                bans.Remove(b.Key);
            }
            SafeFile.WriteAllBytes(_path, JsonSerializer.SerializeToUtf8Bytes(bans.Values.OrderBy(b => b.Key, StringComparer.Ordinal).ToList(), Json), Durability.Instance);
            _bans = bans;
            _stamp = Stamp();
        }
    }

    private FileStream LockFile()
    {
        var deadline = Environment.TickCount64 + 5000;
        while (true)
        {
            try
            {
                return new FileStream(_path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (Environment.TickCount64 < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }

    private (DateTime, long) Stamp()
    {
        var info = new FileInfo(_path);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1);
    }

    private void Reload(bool force)
    {
        if (!force && Environment.TickCount64 < _nextCheck)
        {
            return;
        }
        _nextCheck = Environment.TickCount64 + 1000;
        var stamp = Stamp();
        if (stamp == _stamp)
        {
            return;
        }
        try
        {
            var list = stamp.Item2 < 0 ? [] : JsonSerializer.Deserialize<List<Ban>>(File.ReadAllBytes(_path), Json) ?? [];
            var before = _bans;
            _bans = list.Where(b => !string.IsNullOrEmpty(b.Key)).GroupBy(b => b.Key).ToDictionary(g => g.Key, g => g.Last());
            _stamp = stamp;
            if (!force && _releasedElsewhere is not null)
            {
                var now = _time.GetUtcNow();
                foreach (var gone in before.Values.Where(b => b.Until > now && !(_bans.TryGetValue(b.Key, out var still) && still.Until > now)))
                {
                    _releasedElsewhere(gone);
                }
            }
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            // Being replaced at this moment, or damaged: keep what we have and look again soon.
        }
    }
}
