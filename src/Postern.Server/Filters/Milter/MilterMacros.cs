namespace Postern.Server.Filters.Milter;

/// <summary>
/// The values of Sendmail's macros in one SMTP session: what a milter may ask about the session
/// beyond each command's own data (SMFIC_MACRO). The session fills them in as it learns them
/// (<c>j</c> and <c>{daemon_name}</c> at connect, <c>{auth_authen}</c> after AUTH, <c>{tls_version}</c>
/// after STARTTLS, <c>i</c> once the queue id is known); <see cref="MilterSession"/> sets the ones it
/// is given as arguments itself (<c>{client_addr}</c>, <c>{mail_addr}</c>, <c>{rcpt_addr}</c> …).
/// Names are kept bare: <c>{client_addr}</c> and <c>client_addr</c> are the same macro.
/// </summary>
public sealed class MilterMacros
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    /// <summary>
    /// The macros sent at each stage when the milter does not name its own (SMFIF_SETSYMLIST):
    /// Postfix's defaults (milter_connect_macros, milter_helo_macros …), plus the client's
    /// address and name at connect, which milters such as spamass-milter read.
    /// </summary>
    public static readonly IReadOnlyDictionary<MilterStage, string[]> Defaults = new Dictionary<MilterStage, string[]>
    {
        [MilterStage.Connect] = ["j", "daemon_name", "daemon_addr", "v", "_", "client_addr", "client_name", "client_port", "client_ptr"],
        [MilterStage.Helo] = ["tls_version", "cipher", "cipher_bits", "cert_subject", "cert_issuer"],
        [MilterStage.Mail] = ["i", "auth_type", "auth_authen", "auth_author", "mail_addr", "mail_host", "mail_mailer"],
        [MilterStage.Rcpt] = ["rcpt_addr", "rcpt_host", "rcpt_mailer"],
        [MilterStage.Data] = ["i"],
        [MilterStage.EndOfHeaders] = [],
        [MilterStage.EndOfMessage] = ["i"],
    };

    /// <summary>A macro's value, or null when unset; setting null or "" removes it (unset macros are not sent).</summary>
    public string? this[string name]
    {
        get => _values.TryGetValue(Bare(name), out var v) ? v : null;
        set
        {
            if (string.IsNullOrEmpty(value))
            {
                _values.Remove(Bare(name));
            }
            else
            {
                _values[Bare(name)] = value;
            }
        }
    }

    /// <summary>The macros of <paramref name="names"/> that have a value, with their names as sent on the wire.</summary>
    internal IEnumerable<(string Name, string Value)> Select(IEnumerable<string> names)
    {
        foreach (var n in names)
        {
            if (_values.TryGetValue(n, out var v))
            {
                yield return (Wire(n), v);
            }
        }
    }

    /// <summary>"{name}" → "name"; one-letter names stay as they are.</summary>
    internal static string Bare(string name) =>
        name.Length > 2 && name[0] == '{' && name[^1] == '}' ? name[1..^1] : name;

    /// <summary>
    /// How Sendmail writes a macro name: one-letter names bare (<c>j</c>, <c>i</c>, <c>_</c>), longer
    /// ones in braces (<c>{client_addr}</c>); libmilter's smfi_getsymval finds either way.
    /// </summary>
    internal static string Wire(string bare) => bare.Length == 1 ? bare : "{" + bare + "}";
}
