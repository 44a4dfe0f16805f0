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
/// Verifies the ARC chain of a received message (RFC 8617 §5.2), keys from DNS through
/// <see cref="IMailAuthDns"/> (the DKIM key records, RFC 8617 §4.1.3 and §4.1.2). rsa-sha1 and RSA
/// keys under 1024 bits do not verify (RFC 8301). One instance serves every message.
/// </summary>
/// <remarks>
/// Bounded memory: only the header section is parsed (at most <see cref="MaxHeaderBytes"/>), the body
/// is streamed once into the body hash of the latest ARC-Message-Signature. MimeKit's
/// <see cref="ArcVerifier"/> checks the sets and every ARC-Seal over that header-only message (a seal
/// covers header fields only); the latest ARC-Message-Signature, whose body hash MimeKit would take
/// from a parsed MIME tree, is checked here: body hash streamed, header hash by MimeKit's DKIM code.
/// </remarks>
public sealed class ArcChainVerifier(IMailAuthDns dns)
{
    /// <summary>A message with more sets than RFC 8617 §4.2.1's 50 is a failed chain.</summary>
    public const int MaxInstances = 50;

    /// <summary>The longest header section parsed (as DKIM's); a longer one is a failed chain.</summary>
    public const int MaxHeaderBytes = Dkim.DkimSigner.MaxHeaderBytes;

    private const int MinimumRsaKeyBits = 1024;

    /// <summary>True when the header block has an ARC-Seal, so that the chain is worth reading.</summary>
    public static bool HasChain(HeaderList headers) => headers.Contains(HeaderId.ArcSeal);

    /// <summary>Verifies the message read from the stream's position to its end (a stream that cannot seek is copied into memory).</summary>
    public async Task<ArcChainResult> VerifyAsync(Stream message, CancellationToken cancellationToken = default)
    {
        if (!message.CanSeek)
        {
            var copy = new MemoryStream();
            await message.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
            copy.Position = 0;
            message = copy;
        }
        if (await MessageHead.ReadAsync(message, MaxHeaderBytes, cancellationToken).ConfigureAwait(false) is not { } head)
        {
            return new ArcChainResult(AuthResult.Fail, 0, $"header section longer than {MaxHeaderBytes} octets", []);
        }
        using var mime = head.Parse();
        return await VerifyAsync(mime, message, head.BodyStart, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Verifies a parsed message (written out as bytes first, so that its body is hashed as on the wire).</summary>
    public async Task<ArcChainResult> VerifyAsync(MimeMessage message, CancellationToken cancellationToken = default)
    {
        if (!message.Headers.Contains(HeaderId.ArcSeal))
        {
            return ArcChainResult.None;
        }
        using var bytes = new MemoryStream();
        await message.WriteToAsync(MimeFormat.Crlf, bytes, cancellationToken).ConfigureAwait(false);
        bytes.Position = 0;
        return await VerifyAsync(bytes, cancellationToken).ConfigureAwait(false);
    }

    private async Task<ArcChainResult> VerifyAsync(MimeMessage head, Stream raw, long bodyStart, CancellationToken cancellationToken)
    {
        var seals = head.Headers.Where(h => h.Id == HeaderId.ArcSeal).ToList();
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
        var locator = new DnsDkimKeyLocator(dns);
        var verifier = new ArcVerifier(locator) { MinimumRsaKeyLength = MinimumRsaKeyBits };
        verifier.Disable(DkimSignatureAlgorithm.RsaSha1);
        ArcValidationResult result;
        try
        {
            result = await verifier.VerifyAsync(MimeFormat.Crlf, head, cancellationToken).ConfigureAwait(false);
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
        if (result.Chain == ArcSignatureValidationResult.None)
        {
            return ArcChainResult.None;
        }
        // The header-only message has no body, so MimeKit's own check of the latest
        // ARC-Message-Signature fails on its body hash: its verdict is replaced by ours.
        var errors = result.ChainErrors & ~ArcValidationErrors.MessageSignatureValidationFailed;
        if (errors != ArcValidationErrors.None || result.MessageSignature is null)
        {
            return new ArcChainResult(AuthResult.Fail, seals.Count, Why(errors), sealers);
        }
        if (await MessageSignatureFailure(head, result.MessageSignature.Header, locator, raw, bodyStart, cancellationToken).ConfigureAwait(false) is { } failure)
        {
            return new ArcChainResult(AuthResult.Fail, seals.Count, failure, sealers);
        }
        return new ArcChainResult(AuthResult.Pass, seals.Count, null, sealers);
    }

    private const string MessageChanged = "the latest ARC-Message-Signature did not verify (message changed since it was sealed)";

    /// <summary>
    /// RFC 8617 §5.2 step 4: the latest ARC-Message-Signature verifies as a DKIM signature does
    /// (RFC 8617 §4.1.2, without v=, its i= the instance). Null when it verifies, else why not.
    /// </summary>
    private static async Task<string?> MessageSignatureFailure(MimeMessage head, Header ams, DnsDkimKeyLocator locator, Stream raw, long bodyStart, CancellationToken cancellationToken)
    {
        var tags = Tags(ams);
        if (tags is null || !Required(tags))
        {
            return MessageChanged;
        }
        DkimSignatureAlgorithm algorithm;
        switch (tags["a"]!.ToLowerInvariant())
        {
            case "rsa-sha256":
                algorithm = DkimSignatureAlgorithm.RsaSha256;
                break;
            case "ed25519-sha256":
                algorithm = DkimSignatureAlgorithm.Ed25519Sha256;
                break;
            default:
                return MessageChanged; // rsa-sha1 (RFC 8301) or unknown
        }
        var canonical = DkimTagList.Compact(tags["c"] ?? "simple/simple").ToLowerInvariant().Split('/');
        if (canonical.Length > 2 || Canonicalization(canonical[0]) is not { } headerCanonicalization ||
            Canonicalization(canonical.Length == 2 ? canonical[1] : "simple") is not { } bodyCanonicalization)
        {
            return MessageChanged;
        }
        var limit = long.MaxValue;
        if (tags["l"] is { } l && !long.TryParse(DkimTagList.Compact(l), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit))
        {
            return MessageChanged;
        }
        var key = new DkimBodyKey(bodyCanonicalization == DkimCanonicalizationAlgorithm.Relaxed, "sha256", limit);
        var (hash, length) = await new DkimBodyHashes(raw, bodyStart, [key]).GetAsync(key, cancellationToken).ConfigureAwait(false);
        // A body shorter than l= is not the body that was signed.
        if ((limit != long.MaxValue && length < limit) || Convert.ToBase64String(hash) != DkimTagList.Compact(tags["bh"]!))
        {
            return MessageChanged;
        }
        Org.BouncyCastle.Crypto.AsymmetricKeyParameter publicKey;
        try
        {
            publicKey = await locator.LocatePublicKeyAsync(tags["q"] ?? "dns/txt", DkimTagList.Compact(tags["d"]!), DkimTagList.Compact(tags["s"]!), cancellationToken).ConfigureAwait(false);
        }
        catch (DkimKeyException e)
        {
            // ARC has no temperror (RFC 8617 §4.4): a key that cannot be had fails the chain.
            return $"key: {e.Message}";
        }
        if (publicKey is Org.BouncyCastle.Crypto.Parameters.RsaKeyParameters rsa && rsa.Modulus.BitLength < MinimumRsaKeyBits)
        {
            return $"RSA key of {rsa.Modulus.BitLength} bits is too short (at least {MinimumRsaKeyBits})";
        }
        try
        {
            var check = new DkimHeaderCheck(locator);
            return check.SignatureMatches(head, ams, algorithm, publicKey, DkimTagList.ColonList(tags["h"]!), headerCanonicalization, DkimTagList.Compact(tags["b"]!))
                ? null
                : MessageChanged;
        }
        catch (FormatException)
        {
            return MessageChanged;
        }
    }

    private static bool Required(DkimTagList tags) => new[] { "a", "b", "bh", "d", "h", "s" }.All(t => !string.IsNullOrEmpty(tags[t]));

    private static DkimCanonicalizationAlgorithm? Canonicalization(string name) => name switch
    {
        "simple" => DkimCanonicalizationAlgorithm.Simple,
        "relaxed" => DkimCanonicalizationAlgorithm.Relaxed,
        _ => null,
    };

    private static string Why(ArcValidationErrors e)
    {
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
