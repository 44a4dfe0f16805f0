using System.Text;
using Postern.Protocol.Addresses;
using Postern.Server.Queue;
using Postern.Server.Storage;

namespace Postern.Server.Accounts;

/// <summary>
/// The accounts file in Dovecot's passwd-file format (SPEC §3), so Dovecot can authenticate the same
/// users: <c>user@domain:{ARGON2ID}$argon2id$...</c>, optional further colon fields, # comments.
/// Only this type and <see cref="AccountStore"/> see password hashes (STYLE principle 12).
/// </summary>
public static class PasswdFile
{
    /// <summary>Parses the file into address → stored hash. Addresses are lower-cased.</summary>
    public static Dictionary<string, string> Parse(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            var colon = line.IndexOf(':');
            if (colon <= 0)
            {
                continue;
            }
            var user = line[..colon].ToLowerInvariant();
            var rest = line[(colon + 1)..];
            var end = rest.IndexOf(':');
            result[user] = end < 0 ? rest : rest[..end];
        }
        return result;
    }

    public static Dictionary<string, string> Load(string path) => Parse(File.ReadAllText(path));

    /// <summary>Checks an address is fit to be an account (it becomes a Maildir path).</summary>
    public static string? Validate(string address, out string normalized)
    {
        normalized = address.Trim().ToLowerInvariant();
        if (AddressParser.TryParseMailbox(normalized, true, out var m) != AddressError.None || m is null)
        {
            return $"'{address}' is not an address (user@domain)";
        }
        if (m.IsAddressLiteral || m.LocalPart.StartsWith('"') || m.LocalPart.Contains('/') || m.LocalPart.Contains('+')
            || m.LocalPart.StartsWith('.') || m.LocalPart.Contains(':'))
        {
            return $"'{address}' cannot be an account: use letters, digits, '.', '-' or '_' before the @ (no '+', which is for tags)";
        }
        return null;
    }

    /// <summary>
    /// Rewrites the file with one account set, added or replaced (null hash: removed). Keeps other
    /// lines as they were, and the file's owner, group and mode: Dovecot's auth process (user
    /// dovecot) reads it through its group (README: group postern, mode 0640). A new file is 0600.
    /// </summary>
    /// <exception cref="IOException">The owner or group cannot be kept (the message names the file and group); the file is unchanged.</exception>
    public static bool Update(string path, string address, string? hash, IDurability durability)
    {
        var lines = File.Exists(path) ? File.ReadAllText(path).Split('\n').Select(l => l.TrimEnd('\r')).ToList() : [];
        if (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }
        var found = false;
        for (var i = 0; i < lines.Count; i++)
        {
            var colon = lines[i].IndexOf(':');
            if (colon > 0 && !lines[i].StartsWith('#') && lines[i][..colon].Equals(address, StringComparison.OrdinalIgnoreCase))
            {
                found = true;
                if (hash is null)
                {
                    lines.RemoveAt(i--);
                }
                else
                {
                    lines[i] = $"{address}:{hash}";
                }
            }
        }
        if (!found && hash is not null)
        {
            lines.Add($"{address}:{hash}");
        }
        var text = lines.Count == 0 ? "" : string.Join('\n', lines) + "\n";
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafeFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(text), durability, UnixFileMode.UserRead | UnixFileMode.UserWrite, FileStatus.Of(path));
        return found;
    }
}

/// <summary>The accounts known now; re-read when the passwd file changes.</summary>
public sealed class AccountStore(ReloadingFile<Dictionary<string, string>> file)
{
    public static AccountStore Open(string path, Action<string, int>? loaded = null, Action<string, Exception>? failed = null) =>
        new(new ReloadingFile<Dictionary<string, string>>(path, PasswdFile.Load, new Dictionary<string, string>(),
            (p, v) => loaded?.Invoke(p, v.Count), failed));

    public string Path => file.Path;

    public bool Exists(string address) => file.Value.ContainsKey(address.ToLowerInvariant());

    public IReadOnlyCollection<string> Addresses => file.Value.Keys;

    private long _passwordChecks;

    /// <summary>How many passwords were checked against an account's own hash since start (the seam the AUTH race tests count).</summary>
    public long PasswordChecks => Interlocked.Read(ref _passwordChecks);

    /// <summary>Checks credentials; false for an unknown user too (after the same work, so timing says nothing).</summary>
    public async Task<bool> VerifyAsync(string address, string password, CancellationToken cancellationToken)
    {
        if (!file.Value.TryGetValue(address.ToLowerInvariant(), out var stored))
        {
            await PretendToVerifyAsync(password, cancellationToken).ConfigureAwait(false);
            return false;
        }
        Interlocked.Increment(ref _passwordChecks);
        return await PasswordHasher.VerifyAsync(stored, password, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The work of a check against no account's hash: what an unknown name costs, and what a locked
    /// account costs (its hash is not tried), so that neither answers sooner than a real check.
    /// </summary>
    public Task PretendToVerifyAsync(string password, CancellationToken cancellationToken) =>
        PasswordHasher.VerifyAsync(DummyHash.Value, password, cancellationToken);

    private static readonly Lazy<string> DummyHash = new(() => PasswordHasher.Hash(Guid.NewGuid().ToString()));

    public void Refresh() => file.Refresh();
}
