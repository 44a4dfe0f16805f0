using MimeKit;
using MimeKit.Cryptography;
using Postern.MailAuth.AuthenticationResults;
using Postern.MailAuth.Dkim;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Arc;

/// <summary>
/// What the ARC chain of a message says (RFC 8617 §5.2): none (no ARC-Seal), pass (every seal and
/// the latest ARC-Message-Signature verify) or fail, with the number of sets and who sealed them.
/// </summary>
public sealed record ArcChainResult(AuthResult Result, int Instances, string? Reason, IReadOnlyList<string> Sealers)
{
    public static ArcChainResult None { get; } = new(AuthResult.None, 0, null, []);

    /// <summary>
    /// The resinfo of RFC 8617 §10.2: <c>arc=pass smtp.remote-ip=192.0.2.1</c>, with the number of sets
    /// and the sealers, oldest first, in a reason for people (<c>reason="i=2 lists.example.org, fwd.example.net"</c>).
    /// </summary>
    public string ToResInfo(string? remoteIp)
    {
        var properties = remoteIp is null || Instances == 0 ? null : new List<(string, string)> { ("smtp.remote-ip", remoteIp) };
        var reason = Reason ?? (Instances > 0 ? $"i={Instances} {string.Join(", ", Sealers)}" : null);
        return AuthenticationResultsHeader.ToResInfo(new MethodResult("arc", Result, reason, properties));
    }
}

/// <summary>
/// Verifies the ARC chain of a received message with MimeKit's <see cref="ArcVerifier"/>, keys from
/// DNS through <see cref="IMailAuthDns"/> (the DKIM key records, RFC 8617 §4.1.3 and §4.1.2).
/// rsa-sha1 and RSA keys under 1024 bits do not verify (RFC 8301). One instance serves every message.
/// </summary>
public sealed class ArcChainVerifier(IMailAuthDns dns)
{
    /// <summary>A message with more sets than RFC 8617 §4.2.1's 50 is a failed chain.</summary>
    public const int MaxInstances = 50;

    /// <summary>True when the header block has an ARC-Seal, so that the chain is worth reading.</summary>
    public static bool HasChain(HeaderList headers) => headers.Contains(HeaderId.ArcSeal);

    /// <summary>Verifies the message read from the stream's position to its end.</summary>
    public async Task<ArcChainResult> VerifyAsync(Stream message, CancellationToken cancellationToken = default)
    {
        using var mime = await MimeMessage.LoadAsync(message, cancellationToken).ConfigureAwait(false);
        return await VerifyAsync(mime, cancellationToken).ConfigureAwait(false);
    }

    public async Task<ArcChainResult> VerifyAsync(MimeMessage message, CancellationToken cancellationToken = default)
    {
        var seals = message.Headers.Where(h => h.Id == HeaderId.ArcSeal).ToList();
        if (seals.Count == 0)
        {
            return ArcChainResult.None;
        }
        var sealers = seals.Select(Tags).Where(t => t is not null).OrderBy(t => int.TryParse(t!["i"], out var i) ? i : 0)
            .Select(t => t!["d"] ?? "?").ToList();
        if (seals.Count > MaxInstances)
        {
            return new ArcChainResult(AuthResult.Fail, seals.Count, $"more than {MaxInstances} ARC sets", sealers);
        }
        var verifier = new ArcVerifier(new DnsDkimKeyLocator(dns)) { MinimumRsaKeyLength = 1024 };
        verifier.Disable(DkimSignatureAlgorithm.RsaSha1);
        ArcValidationResult result;
        try
        {
            result = await verifier.VerifyAsync(MimeFormat.Crlf, message, cancellationToken).ConfigureAwait(false);
        }
        catch (DkimKeyException e)
        {
            // ARC has no temperror (RFC 8617 §4.4): a key that cannot be had fails the chain.
            return new ArcChainResult(AuthResult.Fail, seals.Count, $"key: {e.Message}", sealers);
        }
        catch (FormatException e)
        {
            return new ArcChainResult(AuthResult.Fail, seals.Count, $"malformed ARC header field: {e.Message}", sealers);
        }
        return result.Chain switch
        {
            ArcSignatureValidationResult.Pass => new ArcChainResult(AuthResult.Pass, seals.Count, null, sealers),
            ArcSignatureValidationResult.None => ArcChainResult.None,
            _ => new ArcChainResult(AuthResult.Fail, seals.Count, Why(result), sealers),
        };
    }

    private static string Why(ArcValidationResult r)
    {
        var e = r.ChainErrors;
        if (e.HasFlag(ArcValidationErrors.MessageSignatureValidationFailed) || r.MessageSignature?.Signature == ArcSignatureValidationResult.Fail)
        {
            return "the latest ARC-Message-Signature did not verify (message changed since it was sealed)";
        }
        if (e.HasFlag(ArcValidationErrors.SealValidationFailed))
        {
            return "an ARC-Seal did not verify";
        }
        if (e.HasFlag(ArcValidationErrors.InvalidArcSealChainValidationValue))
        {
            return "a forwarder sealed a chain that had already failed (cv=fail)";
        }
        return e == ArcValidationErrors.None ? "an ARC-Seal did not verify" : $"broken chain ({e})";
    }

    private static DkimTagList? Tags(Header h) => DkimTagList.Parse(System.Text.Encoding.UTF8.GetString(h.RawValue), out _);
}

/// <summary>
/// Adds an ARC set (RFC 8617 §5.1) to a message Postern forwards, with MimeKit's
/// <see cref="ArcSigner"/>: ARC-Authentication-Results carries the results Postern found when the
/// message arrived (its Authentication-Results field, arc= included, which gives the seal's cv=),
/// ARC-Message-Signature and ARC-Seal are made with a DKIM key of the forwarding domain (an RSA one
/// when there is one: receivers verify rsa-sha256 seals; Ed25519 seals are rarely understood).
/// Returns false, leaving the message as it was, when there is no key or the chain already failed.
/// </summary>
public sealed class ArcSealer(Func<DkimKeyStore> keys, TimeProvider time)
{
    /// <summary>The header fields the ARC-Message-Signature covers when present (as DKIM signing).</summary>
    public static IReadOnlyList<string> SignedHeaderNames => Dkim.DkimSigner.SignedHeaderNames;

    /// <summary>
    /// Seals <paramref name="message"/> in place as a forwarder for <paramref name="domain"/> (or its
    /// parent with keys). <paramref name="authenticationResults"/> is Postern's own
    /// Authentication-Results field for the message (the whole field or its value), or null when there is none.
    /// </summary>
    public async Task<bool> SealAsync(MimeMessage message, string domain, string authservId, string? authenticationResults, CancellationToken cancellationToken = default)
    {
        var candidates = keys().KeysFor(domain);
        var key = candidates.FirstOrDefault(k => k.KeyType == DkimKeyType.Rsa) ?? candidates.FirstOrDefault();
        if (key is null || message.From.Count == 0)
        {
            return false;
        }
        var results = Parse(authservId, authenticationResults);
        // With sets already there, the seal's cv= is the arc= result found on arrival (MimeKit would
        // otherwise write cv=pass): no such result, no seal.
        if (message.Headers.Contains(HeaderId.ArcSeal) && results?.Results.Any(r => r.Method.Equals("arc", StringComparison.OrdinalIgnoreCase)) != true)
        {
            return false;
        }
        results ??= new MimeKit.Cryptography.AuthenticationResults(authservId);
        var signer = new Signer(key, results, time)
        {
            // relaxed/relaxed, as DKIM signing: survives the re-folding and whitespace changes of later hops.
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        };
        var present = SignedHeaderNames.Where(n => message.Headers.Contains(n)).ToList();
        var before = message.Headers.Count;
        await signer.SignAsync(MimeFormat.Crlf, message, present, cancellationToken).ConfigureAwait(false);
        return message.Headers.Count > before;
    }

    private static MimeKit.Cryptography.AuthenticationResults? Parse(string authservId, string? field)
    {
        if (field is not null)
        {
            var colon = field.IndexOf(':');
            var value = field.StartsWith("Authentication-Results", StringComparison.OrdinalIgnoreCase) && colon > 0 ? field[(colon + 1)..] : field;
            if (MimeKit.Cryptography.AuthenticationResults.TryParse(System.Text.Encoding.UTF8.GetBytes(value), out var parsed))
            {
                return parsed;
            }
        }
        return null;
    }

    private sealed class Signer(DkimSigningKey key, MimeKit.Cryptography.AuthenticationResults results, TimeProvider time)
        : ArcSigner(key.PrivateKey, key.Domain, key.Selector, key.KeyType == DkimKeyType.Ed25519 ? DkimSignatureAlgorithm.Ed25519Sha256 : DkimSignatureAlgorithm.RsaSha256)
    {
        protected override MimeKit.Cryptography.AuthenticationResults GenerateArcAuthenticationResults(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            results;

        protected override Task<MimeKit.Cryptography.AuthenticationResults> GenerateArcAuthenticationResultsAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Task.FromResult(results);

        protected override long GetTimestamp() => time.GetUtcNow().ToUnixTimeSeconds();
    }
}
