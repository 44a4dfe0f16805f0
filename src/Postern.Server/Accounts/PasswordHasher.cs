using System.Text;
using Geralt;

namespace Postern.Server.Accounts;

/// <summary>
/// argon2id through libsodium (Geralt), in the encoded form that libsodium and Dovecot's ARGON2ID
/// scheme both read: <c>$argon2id$v=19$m=...,t=...,p=1$salt$hash</c> (SPEC §4).
/// Verification is CPU- and memory-heavy, so at most a few run at once.
/// </summary>
public static class PasswordHasher
{
    public const string Scheme = "{ARGON2ID}";
    // libsodium's "interactive" limits: 2 passes over 64 MiB.
    private const int Iterations = 2;
    private const int MemoryBytes = 64 * 1024 * 1024;
    private static readonly SemaphoreSlim Gate = new(Math.Max(1, Environment.ProcessorCount));

    /// <summary>Returns "{ARGON2ID}$argon2id$...".</summary>
    public static string Hash(string password)
    {
        Span<char> encoded = stackalloc char[Argon2id.HashSize];
        Argon2id.ComputeHash(encoded, Encoding.UTF8.GetBytes(password), Iterations, MemoryBytes);
        var end = encoded.IndexOf('\0');
        return Scheme + new string(end < 0 ? encoded : encoded[..end]);
    }

    /// <summary>Checks a password against "{ARGON2ID}..." (or a bare $argon2id$ string).</summary>
    public static async Task<bool> VerifyAsync(string stored, string password, CancellationToken cancellationToken = default)
    {
        var encoded = stored.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) ? stored[Scheme.Length..] : stored;
        if (!encoded.StartsWith("$argon2id$", StringComparison.Ordinal))
        {
            return false;
        }
        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Run(() =>
            {
                try
                {
                    return Argon2id.VerifyHash(encoded, Encoding.UTF8.GetBytes(password));
                }
                catch (ArgumentException)
                {
                    return false;
                }
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }
}
