using System.Security.Cryptography;

namespace Postern.MailAuth.Dkim;

/// <summary>What one body hash is taken with: the canonicalization, the hash and l= (long.MaxValue: the whole body).</summary>
internal readonly record struct DkimBodyKey(bool Relaxed, string Hash, long Limit);

/// <summary>
/// Body hashes of the raw octets of a message (RFC 6376 §3.7), each distinct (canonicalization,
/// hash, l=) once, in one streamed pass from the body's first octet: memory is the read buffer and
/// the canonicalizers' buffers, whatever the size or MIME structure of the body. Not MimeKit's:
/// MimeKit hashes its re-serialization of the parsed body, which drops, for one, whitespace after a
/// MIME boundary line (and so fails valid c=*/simple signatures), and needs the MIME tree.
/// </summary>
internal sealed class DkimBodyHashes(Stream raw, long bodyStart, IEnumerable<DkimBodyKey> wanted)
{
    private readonly HashSet<DkimBodyKey> _wanted = [.. wanted];
    private Dictionary<DkimBodyKey, (byte[] Hash, long Length)>? _done;

    /// <summary>The hash and the canonical length of the body for <paramref name="key"/> (which must be among those wanted).</summary>
    public async Task<(byte[] Hash, long Length)> GetAsync(DkimBodyKey key, CancellationToken cancellationToken)
    {
        _done ??= await ComputeAsync(cancellationToken).ConfigureAwait(false);
        return _done[key];
    }

    private async Task<Dictionary<DkimBodyKey, (byte[], long)>> ComputeAsync(CancellationToken cancellationToken)
    {
        var hashes = _wanted.ToDictionary(k => k, k => IncrementalHash.CreateHash(k.Hash == "sha1" ? HashAlgorithmName.SHA1 : HashAlgorithmName.SHA256));
        try
        {
            var bodies = hashes.ToDictionary(h => h.Key, h => new DkimBodyCanonicalizer(h.Key.Relaxed, h.Value, h.Key.Limit));
            raw.Position = bodyStart;
            var buffer = new byte[65536];
            int read;
            while ((read = await raw.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                foreach (var body in bodies.Values)
                {
                    body.Append(buffer.AsSpan(0, read));
                }
            }
            foreach (var body in bodies.Values)
            {
                body.Finish();
            }
            return bodies.ToDictionary(b => b.Key, b => (hashes[b.Key].GetHashAndReset(), b.Value.Length));
        }
        finally
        {
            foreach (var hash in hashes.Values)
            {
                hash.Dispose();
            }
        }
    }
}

/// <summary>
/// MimeKit's header canonicalization and signature check (RFC 6376 §3.7, the header hash), reached
/// through its protected member, over a message of header fields only (<see cref="MessageHead.Parse"/>).
/// Used for DKIM-Signature, ARC-Message-Signature and ARC-Seal alike: each signs named header
/// fields and then itself without its b= value.
/// </summary>
internal sealed class DkimHeaderCheck(MimeKit.Cryptography.IDkimPublicKeyLocator locator) : MimeKit.Cryptography.DkimVerifierBase(locator)
{
    public bool SignatureMatches(MimeKit.MimeMessage message, MimeKit.Header header, MimeKit.Cryptography.DkimSignatureAlgorithm algorithm,
        Org.BouncyCastle.Crypto.AsymmetricKeyParameter key, string[] signedHeaders, MimeKit.Cryptography.DkimCanonicalizationAlgorithm canonicalization, string signature) =>
        VerifySignature(MimeFormat.Crlf, message, header, algorithm, key, signedHeaders, canonicalization, signature);
}
