using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Dkim;

/// <summary>What the DKIM verifier accepts. The defaults are RFC 8301's; <see cref="Legacy"/> is not for production.</summary>
public sealed class DkimVerifierOptions
{
    /// <summary>
    /// Accept rsa-sha1 signatures. Default false: RFC 8301 §3.1 says rsa-sha1 "MUST NOT be used for
    /// signing or verifying" and such signatures have "permanently failed evaluation", so they are
    /// reported as permerror without a DNS lookup.
    /// </summary>
    public bool AcceptRsaSha1 { get; init; }

    /// <summary>
    /// The shortest RSA key accepted, in bits. Default 1024: RFC 8301 §3.2 has signers use at least
    /// 1024 bits, and 512-bit keys can be factored cheaply; a shorter key is a permerror.
    /// </summary>
    public int MinimumRsaKeyBits { get; init; } = 1024;

    /// <summary>
    /// Accept the signature versions of the drafts before RFC 4871 (v=0.5, or no v= at all).
    /// Default false: RFC 6376 §3.5 requires v=1.
    /// </summary>
    public bool AcceptDraftVersions { get; init; }

    /// <summary>
    /// Signatures evaluated per message, top first. Default 10: each costs a DNS query and a hash of
    /// the body, and a message with more is not a legitimate one (the rest are reported as policy).
    /// </summary>
    public int MaxSignatures { get; init; } = 10;

    /// <summary>How long after x= a signature still counts, for clocks that differ. Default 5 minutes.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How far in the future t= may be before the signature is refused. Default one day: a signer
    /// whose clock is off by its time zone (up to 14 hours) is common and harmless, and real
    /// signatures come that way (the mail-auth suite has one 5 hours ahead); one dated days ahead is not.
    /// </summary>
    public TimeSpan FutureTimestampTolerance { get; init; } = TimeSpan.FromDays(1);

    /// <summary>
    /// The longest header section parsed, in octets. Default 1 MiB (as <see cref="DkimSigner.MaxHeaderBytes"/>):
    /// the server refuses far shorter ones before this (Limits.MaxHeaderSize); past it every result is permerror.
    /// </summary>
    public int MaxHeaderBytes { get; init; } = DkimSigner.MaxHeaderBytes;

    public static DkimVerifierOptions Default { get; } = new();

    /// <summary>
    /// What 2006–2010 era mail (and the Mail::DKIM corpus) needs: rsa-sha1, 512-bit keys and the
    /// draft versions. For tests and forensics.
    /// </summary>
    public static DkimVerifierOptions Legacy { get; } = new() { AcceptRsaSha1 = true, MinimumRsaKeyBits = 512, AcceptDraftVersions = true };
}

/// <summary>
/// The result of one DKIM-Signature, with what RFC 8601 §2.7.1 and RFC 6008 put in
/// Authentication-Results: header.d, header.s, header.i, header.a and header.b.
/// </summary>
public sealed record DkimSignatureResult(
    AuthResult Result,
    string? Reason,
    string? Domain,
    string? Selector,
    string? Identity,
    string? Algorithm,
    string? SignaturePrefix,
    bool Testing)
{
    /// <summary>
    /// The resinfo of RFC 8601 §2.2, for example
    /// <c>dkim=pass header.d=example.com header.s=sel header.i=@example.com header.a=rsa-sha256 header.b=AbCdEfGh</c>.
    /// A failure carries its reason as reason="...".
    /// </summary>
    public string ToResInfo()
    {
        var s = new StringBuilder("dkim=").Append(ResultWord(Result));
        if (Reason is not null)
        {
            s.Append(" reason=").Append(Quote(Testing ? $"{Reason} (key in testing mode)" : Reason));
        }
        else if (Testing)
        {
            s.Append(" reason=\"key in testing mode\"");
        }
        Property(s, "header.d", Domain);
        Property(s, "header.s", Selector);
        Property(s, "header.i", Identity);
        Property(s, "header.a", Algorithm);
        Property(s, "header.b", SignaturePrefix);
        return s.ToString();
    }

    internal static string ResultWord(AuthResult result) => result switch
    {
        AuthResult.SoftFail => "softfail",
        AuthResult.TempError => "temperror",
        AuthResult.PermError => "permerror",
        _ => result.ToString().ToLowerInvariant(),
    };

    private static void Property(StringBuilder s, string name, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            // RFC 8601 §2.3: pvalue is a value (token or quoted-string) or [local-part] "@" domain-name.
            s.Append(' ').Append(name).Append('=').Append(IsAddressLike(value) || IsToken(value) ? value : Quote(value));
        }
    }

    private static bool IsToken(string v) => v.All(c => c is > ' ' and < '\x7f' && !"()<>@,;:\\\"/[]?=".Contains(c));

    private static bool IsAddressLike(string v)
    {
        var at = v.LastIndexOf('@');
        return at >= 0 && v[(at + 1)..].Length > 0 &&
            v[..at].All(c => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-/=?^_`{|}~.".Contains(c)) &&
            v[(at + 1)..].All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.');
    }

    private static string Quote(string v) => "\"" + v.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}

/// <summary>
/// Verifies every DKIM-Signature of a message (RFC 6376 §6, RFC 8463 for ed25519-sha256, RFC 8301's
/// algorithm and key-size rules). MimeKit parses the header section alone, canonicalizes the signed header
/// fields and checks the signature; the body hash is taken over the raw body octets (see
/// <see cref="DkimBodyHashes"/>); this class does what MimeKit leaves to its caller: the tag checks (v=,
/// i= against d=, q=, From signed), t= and x= against the injected clock, l= against the body, and
/// the key record's v=, k=, h=, s=, t=s, t=y and revocation, with keys from DNS through
/// <see cref="IMailAuthDns"/>. One instance serves every message, concurrently.
/// </summary>
/// <remarks>
/// Results, one per signature in the order of the header fields: pass; fail (the body hash or the
/// signature does not verify); neutral (it would be fail, but the key is in testing mode, t=y,
/// which RFC 6376 §3.6.1 says must count as unsigned); temperror (DNS did not answer); permerror
/// (syntax, unsupported algorithm or version, expired, key missing, revoked, malformed or
/// unsuitable, rsa-sha1 and short keys unless allowed); policy (beyond
/// <see cref="DkimVerifierOptions.MaxSignatures"/>, not evaluated). No signature gives an empty
/// list, which Authentication-Results reports as dkim=none.
/// </remarks>
public sealed class DkimVerifier(IMailAuthDns dns, TimeProvider time, DkimVerifierOptions? options = null)
{
    private readonly DkimVerifierOptions _options = options ?? DkimVerifierOptions.Default;

    /// <summary>Verifies a message given as bytes.</summary>
    public async Task<IReadOnlyList<DkimSignatureResult>> VerifyAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        using var stream = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(message, out var array)
            ? new MemoryStream(array.Array!, array.Offset, array.Count, writable: false)
            : new MemoryStream(message.ToArray(), writable: false);
        return await VerifyAsync(stream, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Verifies the message from the current position of the stream to its end (a spool file opened
    /// at the message), with bounded memory: the header section is read (at most
    /// <see cref="DkimVerifierOptions.MaxHeaderBytes"/>) and parsed alone, the body only streamed
    /// into the body hashes. A stream that cannot seek is read into memory first.
    /// </summary>
    public async Task<IReadOnlyList<DkimSignatureResult>> VerifyAsync(Stream message, CancellationToken cancellationToken = default)
    {
        if (!message.CanSeek)
        {
            var copy = new MemoryStream();
            await message.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
            copy.Position = 0;
            message = copy;
        }
        if (await MessageHead.ReadAsync(message, _options.MaxHeaderBytes, cancellationToken).ConfigureAwait(false) is not { } head)
        {
            // Past the bound nothing is parsed; the session's own header limits are far lower.
            return [new DkimSignatureResult(AuthResult.PermError, $"header section longer than {_options.MaxHeaderBytes} octets", null, null, null, null, null, false)];
        }
        using var mime = head.Parse();
        var signatures = mime.Headers.Where(h => h.Id == HeaderId.DkimSignature).ToList();
        if (signatures.Count == 0)
        {
            return [];
        }
        var locator = new DnsDkimKeyLocator(dns);
        var check = new DkimHeaderCheck(locator);
        var fields = signatures.Select(h => DkimSignatureFields.Parse(Encoding.UTF8.GetString(h.RawValue), _options.AcceptDraftVersions)).ToList();
        // Ask DNS for every key at once; each signature then waits for its own answer.
        for (var i = 0; i < fields.Count && i < _options.MaxSignatures; i++)
        {
            if (Refusal(fields[i]) is null)
            {
                _ = locator.LookupAsync(fields[i].Domain!, fields[i].Selector!, cancellationToken);
            }
        }
        // Every body hash the signatures want, computed in one pass over the raw body when first needed.
        var bodies = new DkimBodyHashes(message, head.BodyStart, fields.Take(_options.MaxSignatures).Where(f => Refusal(f) is null).Select(Body));
        var results = new List<DkimSignatureResult>(signatures.Count);
        for (var i = 0; i < signatures.Count; i++)
        {
            var f = fields[i];
            var (result, reason, testing) = i < _options.MaxSignatures
                ? await EvaluateAsync(mime, signatures[i], f, locator, check, bodies, cancellationToken).ConfigureAwait(false)
                : (AuthResult.Policy, $"not evaluated: more than {_options.MaxSignatures} signatures", false);
            results.Add(new DkimSignatureResult(result, reason, f.Domain, f.Selector, f.Identity,
                f.AlgorithmName, f.Signature is { Length: > 0 } b ? b[..Math.Min(8, b.Length)] : null, testing));
        }
        return results;
    }

    private async Task<(AuthResult, string?, bool)> EvaluateAsync(MimeMessage mime, Header header, DkimSignatureFields f, DnsDkimKeyLocator locator,
        DkimHeaderCheck check, DkimBodyHashes bodies, CancellationToken cancellationToken)
    {
        if (Refusal(f) is { } refused)
        {
            return (AuthResult.PermError, refused, false);
        }
        var lookup = await locator.LookupAsync(f.Domain!, f.Selector!, cancellationToken).ConfigureAwait(false);
        if (lookup.Record is not { } key)
        {
            return (lookup.Result, lookup.Error, false);
        }
        var refusal = KeyRefusal(f, key);
        if (refusal is not null)
        {
            return (AuthResult.PermError, refusal, key.Testing);
        }
        var (bodyHash, bodyLength) = await bodies.GetAsync(Body(f), cancellationToken).ConfigureAwait(false);
        // A body shorter than l= is not the body that was signed (it has lost octets the signer counted).
        var shorter = f.BodyLength is { } l && l > bodyLength;
        var bodyOk = !shorter && bodyHash.AsSpan().SequenceEqual(Convert.FromBase64String(f.BodyHash));
        bool signatureOk;
        try
        {
            signatureOk = bodyOk && check.SignatureMatches(mime, header, f.Algorithm, key.PublicKey!, f.SignedHeaders, f.HeaderCanonicalization, f.Signature!);
        }
        catch (FormatException e)
        {
            return (AuthResult.PermError, $"signature syntax: {e.Message}", key.Testing);
        }
        if (bodyOk && signatureOk)
        {
            return (AuthResult.Pass, null, key.Testing);
        }
        var why = bodyOk ? "signature did not verify" : shorter ? $"body shorter than l={f.BodyLength} ({bodyLength} octets)" : "body hash did not verify";
        return (key.Testing ? AuthResult.Neutral : AuthResult.Fail, why, key.Testing);
    }

    // What rules a signature out before its key is looked up.
    private string? Refusal(DkimSignatureFields f)
    {
        if (f.Error is not null)
        {
            return f.Error;
        }
        if (f.Algorithm == DkimSignatureAlgorithm.RsaSha1 && !_options.AcceptRsaSha1)
        {
            return "rsa-sha1 is not accepted (RFC 8301)";
        }
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        // RFC 6376 §3.5 x=: "Signatures MAY be considered invalid if the verification time at the Verifier is past the expiration date."
        if (f.Expiration is { } x && x + (long)_options.ClockSkew.TotalSeconds < now)
        {
            return $"signature expired (x={x})";
        }
        // RFC 6376 §3.5 t=: "Verifiers MAY ignore signatures with a timestamp in the future."
        if (f.Timestamp is { } t && t - (long)_options.FutureTimestampTolerance.TotalSeconds > now)
        {
            return $"signature timestamp in the future (t={t})";
        }
        return null;
    }

    // The key record's own conditions (RFC 6376 §3.6.1, §6.1.2; RFC 8301 §3.2; RFC 8463 §4.2).
    private string? KeyRefusal(DkimSignatureFields f, DkimKeyRecord key)
    {
        if (key.Revoked)
        {
            return "key revoked (empty p=)";
        }
        if (key.KeyType != f.KeyType)
        {
            return $"a={f.AlgorithmName} does not fit a key of type {key.KeyType.ToString().ToLowerInvariant()}";
        }
        if (!key.AllowsHash(f.HashName))
        {
            return $"the key does not allow {f.HashName} (h={string.Join(':', key.HashAlgorithms!)})";
        }
        // t=s: "the "i=" domain MUST NOT be a subdomain of "d="".
        if (key.StrictIdentity && !f.IdentityDomain.Equals(f.Domain, StringComparison.OrdinalIgnoreCase))
        {
            return "the key has t=s and i= is a subdomain of d=";
        }
        if (key.PublicKey is RsaKeyParameters rsa)
        {
            if (rsa.Modulus.BitLength < _options.MinimumRsaKeyBits)
            {
                return $"RSA key of {rsa.Modulus.BitLength} bits is too short (at least {_options.MinimumRsaKeyBits})";
            }
            // Bounds the work a hostile key can cause; RFC 8301 §3.2 needs verifiers to handle up to 4096.
            if (rsa.Modulus.BitLength > 8192)
            {
                return $"RSA key of {rsa.Modulus.BitLength} bits is too long";
            }
        }
        return null;
    }

    private static DkimBodyKey Body(DkimSignatureFields f) =>
        new(f.BodyCanonicalization == DkimCanonicalizationAlgorithm.Relaxed, f.HashName, f.BodyLength ?? long.MaxValue);
}
