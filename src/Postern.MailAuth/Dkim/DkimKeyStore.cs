using System.Globalization;

namespace Postern.MailAuth.Dkim;

/// <summary>A key file or folder of the key store that cannot be used; the message names the path. An I/O error to callers that handle files.</summary>
public sealed class DkimKeyStoreException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>
/// The DKIM signing keys, and the only code that reads or writes them. Layout, under the data
/// directory (SPEC §3): <c>dkim/DOMAIN.SELECTOR.key</c>, one PEM private key per file, the domain
/// in lower case (A-labels for an internationalized one), the selector after its last dot. Every key of
/// a domain signs (one DKIM-Signature each), so an RSA and an Ed25519 key side by side give the
/// two signatures RFC 8463 §5 suggests, and a key rotation is: add the new key, publish its record,
/// remove the old file. Files not ending in .key are ignored. A key file others can read is refused.
/// <see cref="Load"/> reads the folder once; the server reloads it when a file changes (no restart).
/// </summary>
public sealed class DkimKeyStore
{
    /// <summary>The folder of the data directory that holds the keys.</summary>
    public const string FolderName = "dkim";

    private readonly Dictionary<string, List<DkimSigningKey>> _byDomain;

    private DkimKeyStore(IEnumerable<DkimSigningKey> keys)
    {
        _byDomain = keys.GroupBy(k => k.Domain, StringComparer.OrdinalIgnoreCase)
            .ToDictionary(g => g.Key, g => g.OrderBy(k => k.Selector, StringComparer.Ordinal).ToList(), StringComparer.OrdinalIgnoreCase);
    }

    public static DkimKeyStore Empty { get; } = new([]);

    /// <summary>Every key, by domain then selector.</summary>
    public IReadOnlyList<DkimSigningKey> Keys => [.. _byDomain.Values.SelectMany(k => k).OrderBy(k => k.Domain, StringComparer.Ordinal).ThenBy(k => k.Selector, StringComparer.Ordinal)];

    /// <summary>The keys of the domain, or of its nearest parent that has keys (mail from a
    /// subdomain then aligns with DMARC's relaxed mode); empty when neither has any.</summary>
    public IReadOnlyList<DkimSigningKey> KeysFor(string domain)
    {
        var name = Normalize(domain);
        while (name is not null)
        {
            if (_byDomain.TryGetValue(name, out var keys))
            {
                return keys;
            }
            var dot = name.IndexOf('.');
            // Stop before a single label: a key for a top-level domain is never wanted.
            name = dot > 0 && name.IndexOf('.', dot + 1) > 0 ? name[(dot + 1)..] : null;
        }
        return [];
    }

    /// <summary>Builds a store from keys already in hand (tests, or keys kept elsewhere).</summary>
    public static DkimKeyStore From(IEnumerable<DkimSigningKey> keys) => new(keys);

    /// <summary>Reads <paramref name="directory"/> (DATA/dkim); a directory that does not exist is an empty store.</summary>
    /// <exception cref="DkimKeyStoreException">A key or folder is unusable.</exception>
    public static DkimKeyStore Load(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return Empty;
        }
        var keys = new List<DkimSigningKey>();
        foreach (var file in Directory.GetFiles(directory, "*.key").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            var dot = name.LastIndexOf('.');
            var (domain, selector) = dot > 0 ? (name[..dot], name[(dot + 1)..]) : ("", name);
            if (Normalize(domain) != domain || !IsSelector(selector))
            {
                throw new DkimKeyStoreException($"{file}: the file name must be DOMAIN.SELECTOR.key (domain in lower case, selector of lower-case letters, digits, '-', '_')");
            }
            if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(file) & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
            {
                throw new DkimKeyStoreException($"{file}: a private key others can read; chmod 600 it");
            }
            try
            {
                keys.Add(DkimSigningKey.Parse(domain, selector, File.ReadAllText(file), file));
            }
            catch (FormatException e)
            {
                throw new DkimKeyStoreException($"{file}: {e.Message}", e);
            }
        }
        return new DkimKeyStore(keys);
    }

    /// <summary>
    /// Makes a key and writes it to <c>directory/DOMAIN.SELECTOR.key</c> (mode 0600, the folder 0700),
    /// never over an existing file. Returns it; its <see cref="DkimSigningKey.TxtRecord"/> is what to publish.
    /// </summary>
    /// <exception cref="DkimKeyStoreException">The names are unusable or the key exists.</exception>
    public static DkimSigningKey Generate(string directory, string domain, string selector, DkimKeyType type, int rsaBits = 2048)
    {
        var name = Normalize(domain) ?? throw new DkimKeyStoreException($"'{domain}' is not a domain name");
        selector = selector.ToLowerInvariant();
        if (!IsSelector(selector) || DnsDkimKeyLocator.KeyName(name, selector) is null)
        {
            throw new DkimKeyStoreException($"'{selector}' is not a selector (letters, digits, '-', '_', at most 63)");
        }
        var path = Path.Combine(directory, $"{name}.{selector}.key");
        if (File.Exists(path))
        {
            throw new DkimKeyStoreException($"{path} exists; not overwriting a key (choose another --selector)");
        }
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var (key, pem) = DkimSigningKey.Generate(name, selector, type, rsaBits);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        try
        {
            // CreateNew: if another keygen won the race, this one fails rather than overwrite.
            using var file = new FileStream(path, options);
            file.Write(System.Text.Encoding.ASCII.GetBytes(pem));
            file.Flush(flushToDisk: true);
        }
        catch (IOException e) when (File.Exists(path))
        {
            throw new DkimKeyStoreException($"{path} exists; not overwriting a key (choose another --selector)", e);
        }
        return DkimSigningKey.Parse(name, selector, pem, path);
    }

    /// <summary>The selector keygen picks when none is given: the month and the key type, e.g. 202611-rsa.</summary>
    public static string DefaultSelector(DkimKeyType type, DateTimeOffset now) =>
        now.UtcDateTime.ToString("yyyyMM", CultureInfo.InvariantCulture) + (type == DkimKeyType.Ed25519 ? "-ed25519" : "-rsa");

    /// <summary>A domain in lower case with A-labels and no final dot, or null when it is not a domain name.</summary>
    internal static string? Normalize(string domain)
    {
        try
        {
            var ascii = new IdnMapping().GetAscii(domain.TrimEnd('.')).ToLowerInvariant();
            return ascii.Contains('.') && ascii.Split('.').All(l => l.Length is > 0 and <= 63 && l.All(c => char.IsAsciiLetterOrDigit(c) || c == '-')) ? ascii : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static bool IsSelector(string s) =>
        s.Length is > 0 and <= 63 && s.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_');
}
