namespace Postern.Server.Queue;

/// <summary>
/// A short queue id (SPEC §6): 12 characters of Crockford base32, the time in milliseconds then a
/// counter, so ids sort by arrival and stay unique across restarts. Safe as a file name by construction.
/// </summary>
public readonly record struct QueueId(string Value)
{
    private const string Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    private static long _counter = Random.Shared.Next(0, 1 << 16);

    /// <summary>A new id for a message received at <paramref name="now"/>.</summary>
    public static QueueId New(DateTimeOffset now)
    {
        var ms = (ulong)now.ToUnixTimeMilliseconds() & ((1UL << 42) - 1);
        var n = (ulong)Interlocked.Increment(ref _counter) & ((1UL << 18) - 1);
        var v = (ms << 18) | n;
        Span<char> chars = stackalloc char[12];
        for (var i = 11; i >= 0; i--)
        {
            chars[i] = Alphabet[(int)(v & 31)];
            v >>= 5;
        }
        return new QueueId(new string(chars));
    }

    /// <summary>True for a string that could be a queue id (checked before it is used in a path).</summary>
    public static bool IsValid(string s) => s.Length == 12 && s.All(c => Alphabet.Contains(c));

    public override string ToString() => Value;
}
