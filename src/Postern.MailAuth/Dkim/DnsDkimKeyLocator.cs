using System.Globalization;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Dkim;

/// <summary>How looking up one DKIM key ended: the record, or temperror/permerror and why.</summary>
public sealed record DkimKeyLookup(DkimKeyRecord? Record, AuthResult Result, string? Error)
{
    public static DkimKeyLookup Found(DkimKeyRecord record) => new(record, AuthResult.Pass, null);

    public static DkimKeyLookup PermError(string error) => new(null, AuthResult.PermError, error);

    public static DkimKeyLookup TempError(string error) => new(null, AuthResult.TempError, error);
}

/// <summary>A key lookup that gave no usable key: <see cref="Result"/> is temperror or permerror.</summary>
public sealed class DkimKeyException(AuthResult result, string message) : Exception(message)
{
    public AuthResult Result { get; } = result;
}

/// <summary>
/// Finds DKIM public keys in DNS through <see cref="IMailAuthDns"/>: the TXT record at
/// selector._domainkey.domain (RFC 6376 §3.6.2.1), parsed by <see cref="DkimKeyRecord"/>. It is
/// MimeKit's <see cref="IDkimPublicKeyLocator"/> too, so MimeKit's own verifiers (ARC) can use it.
/// Contract: one instance serves one message; each name is asked once however many signatures
/// name it; a DNS failure is temperror, a missing, malformed or revoked key permerror.
/// </summary>
public sealed class DnsDkimKeyLocator(IMailAuthDns dns) : IDkimPublicKeyLocator
{
    private static readonly IdnMapping Idn = new() { UseStd3AsciiRules = false };
    private readonly Dictionary<string, Task<DkimKeyLookup>> _lookups = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _lock = new();

    /// <summary>The DNS name of a key, or null when the selector or domain cannot form one.</summary>
    public static string? KeyName(string domain, string selector)
    {
        string ascii;
        try
        {
            // RFC 8616 §4: a d= with U-labels is looked up by its A-labels.
            ascii = Idn.GetAscii(domain.TrimEnd('.'));
        }
        catch (ArgumentException)
        {
            return null;
        }
        var name = $"{selector}._domainkey.{ascii}".ToLowerInvariant();
        return IsDnsName(selector) && IsDnsName(ascii) && name.Length <= 253 ? name : null;
    }

    /// <summary>Looks up and parses the key record of d= and s= (asked once per name and instance).</summary>
    public Task<DkimKeyLookup> LookupAsync(string domain, string selector, CancellationToken cancellationToken = default)
    {
        var name = KeyName(domain, selector);
        if (name is null)
        {
            return Task.FromResult(DkimKeyLookup.PermError($"no valid key name for s={selector} d={domain}"));
        }
        lock (_lock)
        {
            if (!_lookups.TryGetValue(name, out var lookup))
            {
                lookup = QueryAsync(name, cancellationToken);
                _lookups[name] = lookup;
            }
            return lookup;
        }
    }

    private async Task<DkimKeyLookup> QueryAsync(string name, CancellationToken cancellationToken)
    {
        var answer = await dns.TxtAsync(name, cancellationToken).ConfigureAwait(false);
        switch (answer.Status)
        {
            case DnsStatus.TempError:
                return DkimKeyLookup.TempError($"DNS error looking up the key at {name}");
            case DnsStatus.NxDomain:
                return DkimKeyLookup.PermError($"no key at {name} (NXDOMAIN)");
        }
        if (answer.Records.Count == 0)
        {
            return DkimKeyLookup.PermError($"no key at {name} (no TXT record)");
        }
        // RFC 6376 §3.6.2.2: with several records the verifier may pick one; the first usable one wins.
        string? firstError = null;
        foreach (var txt in answer.Records)
        {
            var record = DkimKeyRecord.Parse(txt, out var error);
            if (record is not null)
            {
                return DkimKeyLookup.Found(record);
            }
            firstError ??= error;
        }
        return DkimKeyLookup.PermError($"{firstError} at {name}");
    }

    /// <inheritdoc/>
    public async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
    {
        if (!DkimSignatureFields.HasDnsTxtMethod(methods))
        {
            throw new DkimKeyException(AuthResult.PermError, $"unsupported query method q={methods}");
        }
        var lookup = await LookupAsync(domain, selector, cancellationToken).ConfigureAwait(false);
        return lookup.Record switch
        {
            null => throw new DkimKeyException(lookup.Result, lookup.Error ?? "no key"),
            { PublicKey: null } => throw new DkimKeyException(AuthResult.PermError, "key revoked"),
            { PublicKey: var key } => key,
        };
    }

    /// <inheritdoc/>
    /// <remarks>MimeKit's synchronous entry point; Postern itself only uses the asynchronous one.</remarks>
    public AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
        LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

    // Letters, digits, '-' and '_' in labels of 1 to 63 octets (underscores occur in selectors).
    private static bool IsDnsName(string name) =>
        name.Length > 0 && name.Split('.').All(label => label.Length is > 0 and <= 63 && label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'));
}
