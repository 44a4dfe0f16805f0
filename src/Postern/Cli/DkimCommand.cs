using Postern.MailAuth.Dkim;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern dkim keygen --domain D [--selector S] [--algorithm rsa|ed25519]`: makes a signing key in
/// DATA/dkim/D.S.key (mode 0600; never over an existing one) and prints the TXT record to publish.
/// </summary>
public static class DkimCommand
{
    public const string Usage = "dkim keygen --domain D [--selector S] [--algorithm rsa|ed25519]";

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow("--domain", "--selector", "--algorithm");
        if (a.Positional.ElementAtOrDefault(0) != "keygen" || a.Positional.Count > 1)
        {
            throw new UsageException(Usage);
        }
        var domain = a.Value("--domain") ?? throw new UsageException($"--domain is required: {Usage}");
        var type = a.Value("--algorithm") switch
        {
            null or "rsa" => DkimKeyType.Rsa,
            "ed25519" => DkimKeyType.Ed25519,
            var other => throw new UsageException($"--algorithm {other}: rsa or ed25519"),
        };
        var (options, _) = CommandLine.LoadOptions(a, actAsDataOwner: true);
        if (!options.Domains.Contains(domain.TrimEnd('.'), StringComparer.OrdinalIgnoreCase))
        {
            stderr.WriteLine($"postern: {domain} is not one of Domains ({string.Join(", ", options.Domains)})");
            return ExitCode.Problem;
        }
        var selector = a.Value("--selector") ?? DkimKeyStore.DefaultSelector(type, TimeProvider.System.GetUtcNow());
        DkimSigningKey key;
        try
        {
            key = DkimKeyStore.Generate(Path.Combine(options.DataDirectory, DkimKeyStore.FolderName), domain, selector, type);
        }
        catch (DkimKeyStoreException e)
        {
            stderr.WriteLine($"postern: {e.Message}");
            return ExitCode.Problem;
        }
        var txt = key.TxtRecord;
        stdout.WriteLine($"wrote {key.Path} ({key.Algorithm}, {key.KeyBits} bits)");
        stdout.WriteLine($"publish this TXT record in the zone of {key.Domain}. A running server signs with the key within a second:");
        stdout.WriteLine("until the record is in DNS, receivers find no key (dkim=permerror), so publish it first or move the");
        stdout.WriteLine("file aside until it is:");
        stdout.WriteLine();
        stdout.WriteLine($"name:  {txt.Name}");
        stdout.WriteLine($"value: {string.Join(' ', txt.Strings.Select(s => $"\"{s}\""))}");
        if (txt.Strings.Count > 1)
        {
            stdout.WriteLine($"       ({txt.Strings.Count} strings of at most 255 octets in one TXT record; DNS joins them without a space)");
        }
        stdout.WriteLine();
        stdout.WriteLine(txt.ZoneFileLine);
        return ExitCode.Ok;
    }
}
