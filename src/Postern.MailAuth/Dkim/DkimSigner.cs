using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MimeKit;
using Org.BouncyCastle.Crypto.Digests;
using Org.BouncyCastle.Crypto.Signers;

namespace Postern.MailAuth.Dkim;

/// <summary>How outbound mail is signed.</summary>
public sealed class DkimSignerOptions
{
    /// <summary>
    /// Adds x= this long after t=. Default none: a receiver verifies on arrival, while an expiry
    /// makes the signature fail for anyone who checks the stored message later (RFC 6376 §3.5
    /// makes x= optional). Set it, say to a week, to narrow DKIM replay.
    /// </summary>
    public TimeSpan? SignaturesExpireAfter { get; init; }

    /// <summary>c=simple/simple instead of relaxed/relaxed (for tests of the verifier's simple path).</summary>
    internal bool Simple { get; init; }

    /// <summary>Writes l= (for tests: l= lets anyone append to the body, so Postern never signs with it).</summary>
    internal bool BodyLengthTag { get; init; }

    public static DkimSignerOptions Default { get; } = new();
}

/// <summary>A message that cannot be signed: no From, several From fields, or a header block past the limit.</summary>
public sealed class DkimSigningException(string message) : Exception(message);

/// <summary>
/// Signs outbound mail (RFC 6376 §5; RFC 8463 for Ed25519) with the keys of the From domain:
/// relaxed/relaxed, a=rsa-sha256 or ed25519-sha256 by key, one DKIM-Signature per key. It reads
/// the message as bytes and canonicalizes those bytes (never a re-serialization), and returns the
/// header fields to write in front of the message unchanged. One instance serves every message,
/// concurrently; the keys are asked for at each message, so a key store reloaded meanwhile counts at once.
/// </summary>
/// <remarks>
/// Headers signed: those of <see cref="SignedHeaderNames"/> the message has, each once per
/// occurrence; those of <see cref="OversignedHeaderNames"/> once more than they occur (From always
/// twice), so that nobody can add another instance after signing without breaking the signature
/// (RFC 6376 §8.15, §5.4.2). Fields the message lacks are not listed, so a mailing list may still add
/// its List-* fields. The cryptography is BouncyCastle's, the library MimeKit verifies with.
/// </remarks>
public sealed class DkimSigner(Func<DkimKeyStore> keys, TimeProvider time, DkimSignerOptions? options = null)
{
    /// <summary>A signer with a fixed set of keys.</summary>
    public DkimSigner(DkimKeyStore keys, TimeProvider time, DkimSignerOptions? options = null)
        : this(() => keys, time, options)
    {
    }

    /// <summary>A header block larger than this is refused (the server's own header limits are far lower).</summary>
    public const int MaxHeaderBytes = 1 << 20;

    /// <summary>The fields signed when present (RFC 6376 §5.4.1's list, with Sender, Message-ID, MIME and RFC 8058's List-Unsubscribe-Post).</summary>
    public static IReadOnlyList<string> SignedHeaderNames { get; } =
    [
        "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
        "mime-version", "content-type", "content-transfer-encoding", "content-id", "content-description",
        "in-reply-to", "references",
        "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-message-id",
        "list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post", "list-owner", "list-archive",
    ];

    /// <summary>Fields a message has at most once (RFC 5322 §3.6, RFC 2045, RFC 8058): signed once more than they occur.</summary>
    public static IReadOnlySet<string> OversignedHeaderNames { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
        "mime-version", "content-type", "content-transfer-encoding", "in-reply-to", "references",
        "list-id", "list-unsubscribe", "list-unsubscribe-post",
    };

    private readonly DkimSignerOptions _options = options ?? DkimSignerOptions.Default;

    /// <summary>
    /// Signs the message read from the stream (to its end) with the keys of <paramref name="domain"/>,
    /// or of the From domain when none is given (see <see cref="DkimKeyStore.KeysFor"/>).
    /// Returns the DKIM-Signature fields to prepend, each ending in CRLF; empty when there is no key.
    /// </summary>
    /// <exception cref="DkimSigningException">The message cannot be signed.</exception>
    public async Task<string> SignAsync(Stream message, string? domain = null, CancellationToken cancellationToken = default)
    {
        using var hashing = new MessageHashing(!_options.Simple);
        var buffer = new byte[65536];
        int read;
        while ((read = await message.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            hashing.Append(buffer.AsSpan(0, read));
        }
        return Finish(hashing, domain, null);
    }

    /// <summary>As <see cref="SignAsync"/>, for a message in memory.</summary>
    public string Sign(ReadOnlySpan<byte> message, string? domain = null)
    {
        using var hashing = new MessageHashing(!_options.Simple);
        hashing.Append(message);
        return Finish(hashing, domain, null);
    }

    /// <summary>Signs with the keys given, whatever the From domain.</summary>
    public string Sign(ReadOnlySpan<byte> message, IReadOnlyList<DkimSigningKey> signingKeys)
    {
        using var hashing = new MessageHashing(!_options.Simple);
        hashing.Append(message);
        return Finish(hashing, null, signingKeys);
    }

    private string Finish(MessageHashing hashing, string? domain, IReadOnlyList<DkimSigningKey>? signingKeys)
    {
        var (headerBlock, bodyHash, bodyLength) = hashing.Finish();
        var fields = DkimHeaders.Parse(headerBlock);
        var from = fields.Where(f => f.Name.Equals("from", StringComparison.OrdinalIgnoreCase)).ToList();
        // RFC 6376 §5.4: "The From header field MUST be signed"; RFC 5322 §3.6: exactly one From.
        if (from.Count != 1)
        {
            throw new DkimSigningException(from.Count == 0 ? "the message has no From field" : "the message has several From fields");
        }
        signingKeys ??= keys().KeysFor(domain ?? FromDomain(from[0]));
        if (signingKeys.Count == 0)
        {
            return "";
        }
        var signedNames = new List<string>();
        foreach (var name in SignedHeaderNames)
        {
            var count = fields.Count(f => f.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (count > 0)
            {
                signedNames.AddRange(Enumerable.Repeat(name, count + (OversignedHeaderNames.Contains(name) ? 1 : 0)));
            }
        }
        var output = new StringBuilder();
        foreach (var key in signingKeys)
        {
            output.Append(SignOne(key, fields, signedNames, bodyHash, bodyLength));
        }
        return output.ToString();
    }

    private string SignOne(DkimSigningKey key, List<RawHeaderField> fields, List<string> signedNames, byte[] bodyHash, long bodyLength)
    {
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        var tags = new List<string>
        {
            "v=1;",
            $"a={key.Algorithm};",
            _options.Simple ? "c=simple/simple;" : "c=relaxed/relaxed;",
            $"d={key.Domain};",
            $"s={key.Selector};",
            $"t={now.ToString(CultureInfo.InvariantCulture)};",
        };
        if (_options.SignaturesExpireAfter is { } lifetime)
        {
            tags.Add($"x={(now + (long)lifetime.TotalSeconds).ToString(CultureInfo.InvariantCulture)};");
        }
        if (_options.BodyLengthTag)
        {
            tags.Add($"l={bodyLength.ToString(CultureInfo.InvariantCulture)};");
        }
        var field = new FoldedField("DKIM-Signature:");
        foreach (var tag in tags)
        {
            field.Add(tag, space: true);
        }
        for (var i = 0; i < signedNames.Count; i++)
        {
            var piece = (i == 0 ? "h=" : "") + signedNames[i] + (i == signedNames.Count - 1 ? ";" : ":");
            field.Add(piece, space: i == 0);
        }
        field.Add($"bh={Convert.ToBase64String(bodyHash)};", space: true);
        field.Add("b=", space: true);
        var unsigned = field.ToString();

        // RFC 6376 §3.7: the signed fields in h= order, each instance taken from the bottom up, then this
        // field with an empty b= and without its final CRLF.
        using var data = new MemoryStream();
        var used = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in signedNames)
        {
            var instances = fields.Where(f => f.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).ToList();
            var taken = used.GetValueOrDefault(name);
            used[name] = taken + 1;
            if (taken < instances.Count)
            {
                Canonicalize(instances[instances.Count - 1 - taken].Raw, data, crlf: true);
            }
        }
        Canonicalize(Encoding.ASCII.GetBytes(unsigned), data, crlf: false);
        field.AddValue(Convert.ToBase64String(Sign(key, data.ToArray())));
        return field + "\r\n";
    }

    private void Canonicalize(ReadOnlySpan<byte> raw, Stream output, bool crlf)
    {
        if (_options.Simple)
        {
            DkimHeaders.Simple(raw, output, crlf);
        }
        else
        {
            DkimHeaders.Relaxed(raw, output, crlf);
        }
    }

    private static byte[] Sign(DkimSigningKey key, byte[] data)
    {
        if (key.KeyType == DkimKeyType.Ed25519)
        {
            // RFC 8463 §3: Ed25519 (PureEdDSA) over the SHA-256 hash of the canonicalized data.
            var ed = new Ed25519Signer();
            ed.Init(true, key.PrivateKey);
            var hash = SHA256.HashData(data);
            ed.BlockUpdate(hash, 0, hash.Length);
            return ed.GenerateSignature();
        }
        var rsa = new RsaDigestSigner(new Sha256Digest());
        rsa.Init(true, key.PrivateKey);
        rsa.BlockUpdate(data, 0, data.Length);
        return rsa.GenerateSignature();
    }

    private static string FromDomain(RawHeaderField from)
    {
        var value = Encoding.UTF8.GetString(from.Raw.AsSpan(from.Raw.IndexOf((byte)':') + 1));
        if (!InternetAddressList.TryParse(value, out var list) || list.Mailboxes.FirstOrDefault() is not { } mailbox || string.IsNullOrEmpty(mailbox.Domain))
        {
            throw new DkimSigningException("the From field has no address with a domain");
        }
        return mailbox.Domain;
    }

    /// <summary>Reads the header block into memory (bounded) and streams the body into the body hash.</summary>
    private sealed class MessageHashing(bool relaxed) : IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private DkimBodyCanonicalizer? _body;
        private DkimMessageSplitter? _splitter;

        public void Append(ReadOnlySpan<byte> chunk)
        {
            _body ??= new DkimBodyCanonicalizer(relaxed, _hash);
            _splitter ??= new DkimMessageSplitter([_body], MaxHeaderBytes);
            if (!_splitter.Append(chunk))
            {
                throw new DkimSigningException($"the header block is longer than {MaxHeaderBytes} octets");
            }
        }

        public (byte[] Header, byte[] BodyHash, long BodyLength) Finish()
        {
            Append([]);
            _splitter!.Finish();
            return (_splitter.HeaderBlock.ToArray(), _hash.GetHashAndReset(), _body!.Length);
        }

        public void Dispose() => _hash.Dispose();
    }

    /// <summary>A header field folded at 78 columns (RFC 5322 §2.1.1), continuation lines starting with a tab.</summary>
    private sealed class FoldedField(string start)
    {
        private const int Width = 78;
        private readonly StringBuilder _text = new(start);
        private int _column = start.Length;

        public void Add(string piece, bool space)
        {
            if (_column + (space ? 1 : 0) + piece.Length > Width)
            {
                NewLine();
            }
            else if (space)
            {
                _text.Append(' ');
                _column++;
            }
            _text.Append(piece);
            _column += piece.Length;
        }

        /// <summary>The b= value, cut wherever the line is full (whitespace in b= is ignored, RFC 6376 §3.5).</summary>
        public void AddValue(string value)
        {
            while (value.Length > 0)
            {
                if (_column >= Width)
                {
                    NewLine();
                }
                var n = Math.Min(value.Length, Width - _column);
                _text.Append(value.AsSpan(0, n));
                _column += n;
                value = value[n..];
            }
        }

        public override string ToString() => _text.ToString();

        private void NewLine()
        {
            _text.Append("\r\n\t");
            _column = 8;
        }
    }
}
