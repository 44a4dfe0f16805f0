using System.Security.Cryptography;
using System.Text;

namespace Postern.MailAuth.Srs;

/// <summary>What <see cref="SrsRewriter.Reverse"/> made of an address: a closed set of three.</summary>
public abstract record SrsReverse
{
    // Only the three below: a switch over them is complete.
    private SrsReverse()
    {
    }

    /// <summary>The local part is not SRS0 or SRS1: an ordinary address, to be handled as one.</summary>
    public sealed record NotSrs : SrsReverse;

    /// <summary>A genuine SRS address of ours; <paramref name="Address"/> is where the bounce goes.</summary>
    public sealed record Valid(string Address) : SrsReverse;

    /// <summary>An SRS address that must not be relayed (forged, expired or malformed);
    /// <paramref name="Reason"/> is plain words for a log line or a reply.</summary>
    public sealed record Invalid(string Reason) : SrsReverse;
}

/// <summary>
/// The Sender Rewriting Scheme as libsrs2 1.0 (the copy inside PostSRSd 1.x, which Postfix users run)
/// writes and reads it, byte for byte, so that Postern and a PostSRSd holding the same secret accept
/// each other's addresses (one mail system moving to the other keeps its bounces working):
/// <list type="bullet">
/// <item>An ordinary sender <c>local@orig</c> forwarded by <c>fwd</c> becomes
/// <c>SRS0=HHHH=TT=orig=local@fwd</c>: TT the day (days since 1970, mod 1024) in two base32 characters,
/// HHHH the first four base64 characters of HMAC-SHA1(secret, lower(TT) lower(orig) lower(local)).</item>
/// <item>A sender already <c>SRS0xxx@fwd1</c> (another forwarder's) becomes
/// <c>SRS1=HHHH=fwd1=xxx@fwd</c> (xxx begins with that SRS0's separator, hence the "=="),
/// HHHH over lower(fwd1) lower(xxx); a sender already <c>SRS1=hhhh=fwd1=xxx@fwd2</c> becomes the same
/// with our hash and domain: fwd1, the forwarder that can check the SRS0 part, is kept.</item>
/// <item>Reversing SRS0 gives <c>local@orig</c> after checking the hash and the day;
/// reversing SRS1 gives <c>SRS0xxx@fwd1</c> after checking the hash, and fwd1 checks the rest.</item>
/// </list>
/// Hashes compare without regard to case (libsrs2 does, as some systems fold local parts), which leaves
/// about 21 bits of the four characters' 24; the timestamp is checked by libsrs2's rule, so a stamp from
/// "tomorrow" counts as 1023 days old. There is one secret: to rotate it, PostSRSd keeps several
/// (the first signs, every one verifies) — not done here.
/// </summary>
public sealed class SrsRewriter
{
    private const string Base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // The timestamp is two base32 characters: 10 bits, 1024 days, after which it wraps.
    private const int TimeSlots = 1024;
    // libsrs2's default hash length (PostSRSd's -n and -N, 4 and 4 unless changed).
    private const int HashLength = 4;
    // SHA-1's block size: libsrs2 shortens a longer key in its own way (see the constructor).
    private const int MaxSecretBytes = 64;

    private static readonly SrsReverse.Invalid Malformed = new("malformed SRS address");
    private static readonly SrsReverse.Invalid HashMismatch = new("SRS hash does not match");

    private readonly byte[] _key;
    private readonly TimeProvider _time;
    private readonly int _maxAgeDays;

    /// <param name="secret">The shared secret, used as its UTF-8 bytes as PostSRSd uses a line of its
    /// secret file: 1 to 64 bytes, no line break.</param>
    /// <param name="time">The clock for timestamps and their age.</param>
    /// <param name="maxAge">How old an SRS0 address may be when it comes back: whole days, 0 to 1023.
    /// Default <see cref="DefaultMaxAge"/>.</param>
    public SrsRewriter(string secret, TimeProvider time, TimeSpan? maxAge = null)
    {
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentNullException.ThrowIfNull(time);
        if (secret.Length == 0 || secret.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
        {
            throw new ArgumentException("the SRS secret must be one line of at least one character", nameof(secret));
        }
        _key = Encoding.UTF8.GetBytes(secret);
        if (_key.Length > MaxSecretBytes)
        {
            // HMAC hashes a key longer than the block first; libsrs2's HMAC then takes the digest up to
            // its first zero byte, or reads past it: such a key cannot be matched, so it is refused.
            throw new ArgumentException($"the SRS secret must be at most {MaxSecretBytes} bytes (libsrs2 cannot use a longer one reliably)", nameof(secret));
        }
        var age = maxAge ?? DefaultMaxAge;
        if (age < TimeSpan.Zero || age.Ticks % TimeSpan.TicksPerDay != 0 || age.Days >= TimeSlots)
        {
            throw new ArgumentOutOfRangeException(nameof(maxAge), age, "whole days from 0 to 1023: the SRS timestamp counts days, modulo 1024");
        }
        _time = time;
        _maxAgeDays = age.Days;
    }

    /// <summary>21 days, libsrs2's and PostSRSd's default: long enough for a bounce after a queue's retries.</summary>
    public static TimeSpan DefaultMaxAge { get; } = TimeSpan.FromDays(21);

    /// <summary>
    /// Rewrites envelope sender <paramref name="sender"/> (local@domain, never empty) for forwarding by
    /// <paramref name="forwardingDomain"/>. Returns null when it cannot or need not be rewritten: no '@',
    /// an empty or quoted local part, an empty domain, an address literal or a domain with '=', a sender
    /// already in <paramref name="forwardingDomain"/>, or an SRS1 sender whose parts cannot be found.
    /// </summary>
    public string? Forward(string sender, string forwardingDomain)
    {
        ArgumentNullException.ThrowIfNull(sender);
        ArgumentNullException.ThrowIfNull(forwardingDomain);
        if (forwardingDomain.Length == 0 || forwardingDomain.AsSpan().IndexOfAny("@= \t\r\n") >= 0)
        {
            throw new ArgumentException($"'{forwardingDomain}' is not a domain to forward from", nameof(forwardingDomain));
        }
        var at = sender.IndexOf('@');
        // An unquoted local part holds no '@' (RFC 5321 §4.1.2); a quoted one could not travel inside
        // another local part unquoted, so such senders are left as they are.
        if (at <= 0 || at != sender.LastIndexOf('@') || sender[0] == '"')
        {
            return null;
        }
        var local = sender[..at];
        var host = sender[(at + 1)..];
        // An address literal has no SPF to satisfy and no place in SRS; '=' would end the host early on the way back.
        if (host.Length == 0 || host[0] == '[' || host.Contains('='))
        {
            return null;
        }
        // libsrs2 leaves a sender in the forwarding domain alone (PostSRSd answers with it unchanged).
        if (string.Equals(host, forwardingDomain, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        if (IsTag(local, '1'))
        {
            // SRS1=hhhh=fwd1=xxx: keep the first forwarder and what it can check, sign them anew.
            if (!TrySplit(local.AsSpan(5), out _, out var rest) || !TrySplit(rest, out var firstHost, out var user)
                || firstHost.Length == 0 || user.Length == 0)
            {
                return null;
            }
            var srsHost = firstHost.ToString();
            var srsUser = user.ToString();
            return $"SRS1={Hash(srsHost, srsUser)}={srsHost}={srsUser}@{forwardingDomain}";
        }
        if (IsTag(local, '0'))
        {
            // Another forwarder's SRS0: its host and everything after "SRS0" (separator included) are kept.
            var srsUser = local[4..];
            return $"SRS1={Hash(host, srsUser)}={host}={srsUser}@{forwardingDomain}";
        }
        var stamp = Stamp(Today());
        return $"SRS0={Hash(stamp, host, local)}={stamp}={host}={local}@{forwardingDomain}";
    }

    /// <summary>
    /// Reverses an address received at one of our domains (or its local part alone): SRS0 gives the
    /// original sender; SRS1 gives the SRS0 address at the first forwarder's domain. The domain of
    /// <paramref name="address"/> is not looked at, as libsrs2 does not: which domains are ours is the caller's.
    /// </summary>
    public SrsReverse Reverse(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var at = address.IndexOf('@');
        var local = at < 0 ? address : address[..at];
        if (!LooksLikeSrs(local))
        {
            return new SrsReverse.NotSrs();
        }
        var fields = local.AsSpan(5);
        if (local[3] == '1')
        {
            if (!TrySplit(fields, out var hash1, out var rest1) || !TrySplit(rest1, out var host1, out var user1)
                || host1.Length == 0 || user1.Length == 0)
            {
                return Malformed;
            }
            var srsHost = host1.ToString();
            var srsUser = user1.ToString();
            if (!HashMatches(hash1, srsHost, srsUser))
            {
                return HashMismatch;
            }
            return new SrsReverse.Valid($"SRS0{srsUser}@{srsHost}");
        }
        if (!TrySplit(fields, out var hash, out var rest) || !TrySplit(rest, out var stampSpan, out rest)
            || !TrySplit(rest, out var hostSpan, out var userSpan) || hostSpan.Length == 0 || userSpan.Length == 0
            || !TryReadStamp(stampSpan, out var then))
        {
            return Malformed;
        }
        var host = hostSpan.ToString();
        var user = userSpan.ToString();
        // A forged address is reported as one, whatever its age (libsrs2 looks at the stamp first).
        if (!HashMatches(hash, stampSpan.ToString(), host, user))
        {
            return HashMismatch;
        }
        // libsrs2: the age is today minus the stamp, modulo 1024; a stamp ahead of today has wrapped.
        var age = ((Today() % TimeSlots) - then + TimeSlots) % TimeSlots;
        if (age > _maxAgeDays)
        {
            return new SrsReverse.Invalid($"SRS address expired (older than {_maxAgeDays} {(_maxAgeDays == 1 ? "day" : "days")})");
        }
        return new SrsReverse.Valid($"{user}@{host}");
    }

    /// <summary>Whether <paramref name="localPart"/> begins as libsrs2's SRS addresses do: "SRS0" or
    /// "SRS1" in any case, then '=', '+' or '-' (libsrs2 writes '=' unless told otherwise).</summary>
    public static bool LooksLikeSrs(string localPart)
    {
        ArgumentNullException.ThrowIfNull(localPart);
        return IsTag(localPart, '0') || IsTag(localPart, '1');
    }

    /// <summary>
    /// Reads the secret from <paramref name="path"/> (its first line, trimmed), or creates the file with a
    /// new secret (32 random bytes in base64, mode 0600) when there is none. Creating never replaces a file:
    /// when another process creates it first, its secret is read and used. PostSRSd reads the same file (-s).
    /// </summary>
    /// <exception cref="InvalidDataException">The file's first line is empty.</exception>
    public static string LoadOrCreateSecret(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        // Bounded: an empty file is waited for only briefly (about a second) before it is reported.
        for (var attempt = 0; attempt < 50; attempt++)
        {
            if (TryReadFirstLine(path, out var existing))
            {
                if (existing.Length > 0)
                {
                    return existing;
                }
                // Created but not yet written by a racing process: its line comes at once.
                Thread.Sleep(20);
                continue;
            }
            var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
            // Share.Read: .NET's FileShare.None is an exclusive flock(2) on Unix, and a racing reader must not fail on it.
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.Read };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }
            try
            {
                // CreateNew: if another process won the race, this one fails rather than overwrite its secret.
                using var file = new FileStream(path, options);
                file.Write(Encoding.ASCII.GetBytes(secret + "\n"));
                file.Flush(flushToDisk: true);
                return secret;
            }
            catch (IOException) when (File.Exists(path))
            {
                // Lost the race: read the winner's secret on the next round.
            }
        }
        throw new InvalidDataException($"{path}: the first line is empty; it must hold the SRS secret");
    }

    private static bool TryReadFirstLine(string path, out string line)
    {
        try
        {
            using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete), Encoding.UTF8);
            line = (reader.ReadLine() ?? "").Trim();
            return true;
        }
        catch (FileNotFoundException)
        {
            line = "";
            return false;
        }
    }

    /// <summary>"SRS" in any case, the digit, then one of libsrs2's separators.</summary>
    private static bool IsTag(string local, char digit) =>
        local.Length >= 5 && local.StartsWith("SRS", StringComparison.OrdinalIgnoreCase) && local[3] == digit && local[4] is '=' or '+' or '-';

    /// <summary>Splits at the first '=' (libsrs2's SRSSEP), as libsrs2's strchr does: the tail keeps any later ones.</summary>
    private static bool TrySplit(ReadOnlySpan<char> s, out ReadOnlySpan<char> head, out ReadOnlySpan<char> tail)
    {
        var i = s.IndexOf('=');
        if (i < 0)
        {
            head = tail = default;
            return false;
        }
        head = s[..i];
        tail = s[(i + 1)..];
        return true;
    }

    /// <summary>Days since 1970-01-01 UTC (libsrs2: time() / 86400).</summary>
    private long Today() => _time.GetUtcNow().ToUnixTimeSeconds() / 86400;

    private static string Stamp(long day)
    {
        var slot = (int)(day % TimeSlots);
        return string.Concat(Base32[slot >> 5], Base32[slot & 31]);
    }

    private static bool TryReadStamp(ReadOnlySpan<char> stamp, out long slot)
    {
        slot = 0;
        // libsrs2 writes exactly two characters; it reads them in either case.
        if (stamp.Length != 2)
        {
            return false;
        }
        foreach (var c in stamp)
        {
            var i = char.IsAscii(c) ? Base32.IndexOf(char.ToUpperInvariant(c), StringComparison.Ordinal) : -1;
            if (i < 0)
            {
                return false;
            }
            slot = (slot << 5) | (uint)i;
        }
        return true;
    }

    /// <summary>libsrs2's hash: HMAC-SHA1 over the pieces, each with A-Z lowered (its C-locale tolower),
    /// one after the other with nothing between; the first <see cref="HashLength"/> base64 characters.</summary>
    private string Hash(params ReadOnlySpan<string> pieces)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA1, _key);
        foreach (var piece in pieces)
        {
            var bytes = Encoding.UTF8.GetBytes(piece);
            for (var i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] is >= (byte)'A' and <= (byte)'Z')
                {
                    bytes[i] = (byte)(bytes[i] + ('a' - 'A'));
                }
            }
            hmac.AppendData(bytes);
        }
        Span<byte> mac = stackalloc byte[SHA1.HashSizeInBytes];
        hmac.GetHashAndReset(mac);
        // Three bytes are four base64 characters: libsrs2's "little base64 encoding" of the start.
        return Convert.ToBase64String(mac[..3]);
    }

    /// <summary>libsrs2's check: the hash as given must be ours, compared without regard to ASCII case.</summary>
    private bool HashMatches(ReadOnlySpan<char> given, params ReadOnlySpan<string> pieces)
    {
        if (given.Length != HashLength)
        {
            return false;
        }
        var ours = Hash(pieces);
        Span<byte> a = stackalloc byte[HashLength];
        Span<byte> b = stackalloc byte[HashLength];
        for (var i = 0; i < HashLength; i++)
        {
            if (!char.IsAscii(given[i]))
            {
                return false;
            }
            a[i] = (byte)char.ToUpperInvariant(given[i]);
            b[i] = (byte)char.ToUpperInvariant(ours[i]);
        }
        return CryptographicOperations.FixedTimeEquals(a, b);
    }
}
