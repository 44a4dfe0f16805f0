using System.Buffers;
using System.Globalization;
using System.Text;
using Postern.Protocol.Addresses;
using Postern.Protocol.Replies;

namespace Postern.Protocol.Commands;

/// <summary>
/// Turns one command line (without its CRLF) into an <see cref="SmtpCommand"/>. Pure: no state,
/// no I/O. Parameters are validated here, so handlers only ever see well-formed values.
/// </summary>
public static class CommandParser
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    /// <summary>Context that changes how a line parses: the domain used for a bare &lt;postmaster&gt;.</summary>
    public static SmtpCommand Parse(in ReadOnlySequence<byte> line, string postmasterDomain) =>
        line.IsSingleSegment ? Parse(line.FirstSpan, postmasterDomain) : Parse(line.ToArray(), postmasterDomain);

    public static SmtpCommand Parse(ReadOnlySpan<byte> line, string postmasterDomain)
    {
        var space = line.IndexOf((byte)' ');
        var verbBytes = space < 0 ? line : line[..space];
        var verb = ParseVerb(verbBytes);
        if (verb == Verb.Unknown)
        {
            return new SimpleCommand(Verb.Unknown);
        }
        string args;
        try
        {
            args = space < 0 ? "" : StrictUtf8.GetString(line[(space + 1)..]);
        }
        catch (DecoderFallbackException)
        {
            return new InvalidCommand(verb, Reply.SyntaxError);
        }
        if (args.Contains('\0'))
        {
            return new InvalidCommand(verb, Reply.SyntaxError);
        }
        return verb switch
        {
            Verb.Helo or Verb.Ehlo => ParseHelo(args, verb == Verb.Ehlo),
            Verb.Mail => ParseMail(args),
            Verb.Rcpt => ParseRcpt(args, postmasterDomain),
            Verb.Bdat => ParseBdat(args),
            Verb.Auth => ParseAuth(args),
            Verb.Data or Verb.Rset or Verb.Quit or Verb.StartTls =>
                args.Trim().Length == 0 ? new SimpleCommand(verb) : new InvalidCommand(verb, Reply.SyntaxError),
            _ => new SimpleCommand(verb),
        };
    }

    private static Verb ParseVerb(ReadOnlySpan<byte> v)
    {
        if (v.Length is < 4 or > 8)
        {
            return Verb.Unknown;
        }
        Span<byte> up = stackalloc byte[v.Length];
        for (var i = 0; i < v.Length; i++)
        {
            var b = v[i];
            up[i] = b is >= (byte)'a' and <= (byte)'z' ? (byte)(b - 32) : b;
        }
        return up switch
        {
            _ when up.SequenceEqual("HELO"u8) => Verb.Helo,
            _ when up.SequenceEqual("EHLO"u8) => Verb.Ehlo,
            _ when up.SequenceEqual("MAIL"u8) => Verb.Mail,
            _ when up.SequenceEqual("RCPT"u8) => Verb.Rcpt,
            _ when up.SequenceEqual("DATA"u8) => Verb.Data,
            _ when up.SequenceEqual("BDAT"u8) => Verb.Bdat,
            _ when up.SequenceEqual("RSET"u8) => Verb.Rset,
            _ when up.SequenceEqual("NOOP"u8) => Verb.Noop,
            _ when up.SequenceEqual("QUIT"u8) => Verb.Quit,
            _ when up.SequenceEqual("VRFY"u8) => Verb.Vrfy,
            _ when up.SequenceEqual("EXPN"u8) => Verb.Expn,
            _ when up.SequenceEqual("HELP"u8) => Verb.Help,
            _ when up.SequenceEqual("STARTTLS"u8) => Verb.StartTls,
            _ when up.SequenceEqual("AUTH"u8) => Verb.Auth,
            _ => Verb.Unknown,
        };
    }

    private static SmtpCommand ParseHelo(string args, bool extended)
    {
        var domain = args.Trim();
        // RFC 5321 §4.1.1.1: a domain or, for EHLO, an address literal. Many clients send a bare
        // hostname without dots or an IP without brackets; accept any single token of printable ASCII.
        if (domain.Length == 0 || domain.Contains(' ') || domain.Any(c => c < 33 || c > 126))
        {
            return new InvalidCommand(extended ? Verb.Ehlo : Verb.Helo, Reply.HeloRequiresDomain);
        }
        return new HeloCommand(domain, extended);
    }

    private static bool TryStripPrefix(string args, string prefix, out string rest)
    {
        rest = "";
        if (!args.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        // RFC 5321 says no space after the colon; many clients send one, and accepting it is harmless.
        rest = args[prefix.Length..].TrimStart(' ');
        return true;
    }

    private static SmtpCommand ParseMail(string args)
    {
        if (!TryStripPrefix(args, "FROM:", out var rest))
        {
            return new InvalidCommand(Verb.Mail, Reply.SyntaxError);
        }
        // SMTPUTF8 must be known before the address is judged. It is a parameter (RFC 6531 §3.4), so only
        // what follows the path counts: a quoted local part saying "SMTPUTF8" is not the client asking for it.
        var smtpUtf8 = ParameterWords(AddressParser.AfterPath(rest)).Any(w => w.Equals("SMTPUTF8", StringComparison.OrdinalIgnoreCase));
        var error = AddressParser.TryParseReversePath(rest, smtpUtf8, out var path, out var paramText);
        if (error != AddressError.None)
        {
            return new InvalidCommand(Verb.Mail, error == AddressError.NeedsSmtpUtf8 ? Reply.Utf8AddressNeedsSmtpUtf8 : Reply.BadSenderSyntax);
        }
        long? size = null;
        var body = BodyType.SevenBit;
        var ret = DsnReturn.Unspecified;
        string? envId = null;
        if (Parameters(paramText, Verb.Mail, out var parameters) is { } badMail)
        {
            return badMail;
        }
        foreach (var (key, value) in parameters)
        {
            switch (key.ToUpperInvariant())
            {
                case "SIZE":
                    // RFC 1870: SIZE=digits.
                    if (value is null || value.Length > 20 || !value.All(char.IsAsciiDigit)
                        || !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var s))
                    {
                        return new InvalidCommand(Verb.Mail, Reply.SyntaxError.WithText("Bad SIZE parameter"));
                    }
                    size = s;
                    break;
                case "BODY":
                    if (!TryChoose(value, out body, ("7BIT", BodyType.SevenBit), ("8BITMIME", BodyType.EightBitMime)))
                    {
                        return new InvalidCommand(Verb.Mail, Reply.ParameterNotImplemented.WithText("BODY must be 7BIT or 8BITMIME"));
                    }
                    break;
                case "SMTPUTF8":
                    if (value is not null)
                    {
                        return new InvalidCommand(Verb.Mail, Reply.SyntaxError.WithText("SMTPUTF8 takes no value"));
                    }
                    break;
                case "RET":
                    if (!TryChoose(value, out ret, ("FULL", DsnReturn.Full), ("HDRS", DsnReturn.Headers)))
                    {
                        return new InvalidCommand(Verb.Mail, Reply.SyntaxError.WithText("RET must be FULL or HDRS"));
                    }
                    break;
                case "ENVID":
                    // RFC 3461 §4.4: xtext, at most 100 characters.
                    if (value is null || value.Length > 100 || !IsXtext(value))
                    {
                        return new InvalidCommand(Verb.Mail, Reply.SyntaxError.WithText("Bad ENVID parameter"));
                    }
                    envId = value;
                    break;
                case "AUTH":
                    // RFC 4954 §5: accepted and not trusted; Postern records the authenticated identity itself.
                    break;
                default:
                    return new InvalidCommand(Verb.Mail, Reply.UnknownParameter);
            }
        }
        return new MailCommand(path, size, body, smtpUtf8, ret, envId);
    }

    private static SmtpCommand ParseRcpt(string args, string postmasterDomain)
    {
        if (!TryStripPrefix(args, "TO:", out var rest))
        {
            return new InvalidCommand(Verb.Rcpt, Reply.SyntaxError);
        }
        // Whether UTF-8 is allowed depends on MAIL FROM; the session checks IsInternational against it.
        var error = AddressParser.TryParseForwardPath(rest, allowUtf8: true, postmasterDomain, out var path, out var paramText);
        if (error != AddressError.None || path is null)
        {
            return new InvalidCommand(Verb.Rcpt, Reply.BadRecipientSyntax);
        }
        var notify = DsnNotify.None;
        string? orcpt = null;
        if (Parameters(paramText, Verb.Rcpt, out var parameters) is { } badRcpt)
        {
            return badRcpt;
        }
        foreach (var (key, value) in parameters)
        {
            switch (key.ToUpperInvariant())
            {
                case "NOTIFY":
                    if (!TryParseNotify(value, out notify))
                    {
                        return new InvalidCommand(Verb.Rcpt, Reply.SyntaxError.WithText("Bad NOTIFY parameter (NEVER alone, or SUCCESS, FAILURE, DELAY)"));
                    }
                    break;
                case "ORCPT":
                    // RFC 3461 §4.2: addr-type ";" xtext, at most 500 characters.
                    var semi = value?.IndexOf(';') ?? -1;
                    if (value is null || semi <= 0 || value.Length > 500 || !IsXtext(value[(semi + 1)..]))
                    {
                        return new InvalidCommand(Verb.Rcpt, Reply.SyntaxError.WithText("Bad ORCPT parameter"));
                    }
                    orcpt = value;
                    break;
                default:
                    return new InvalidCommand(Verb.Rcpt, Reply.UnknownParameter);
            }
        }
        return new RcptCommand(path, notify, orcpt);
    }

    private static SmtpCommand ParseBdat(string args)
    {
        var words = args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length is < 1 or > 2 || words[0].Length > 18 || !words[0].All(char.IsAsciiDigit)
            || !long.TryParse(words[0], NumberStyles.None, CultureInfo.InvariantCulture, out var size))
        {
            return new InvalidCommand(Verb.Bdat, Reply.SyntaxError.WithText("BDAT needs a chunk size"));
        }
        var last = words.Length == 2;
        if (last && !words[1].Equals("LAST", StringComparison.OrdinalIgnoreCase))
        {
            return new InvalidCommand(Verb.Bdat, Reply.SyntaxError.WithText("BDAT size [LAST]"));
        }
        return new BdatCommand(size, last);
    }

    private static SmtpCommand ParseAuth(string args)
    {
        var words = args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length is < 1 or > 2)
        {
            return new InvalidCommand(Verb.Auth, Reply.SyntaxError.WithText("AUTH mechanism [initial-response]"));
        }
        return new AuthCommand(words[0].ToUpperInvariant(), words.Length == 2 ? words[1] : null);
    }

    /// <summary>
    /// RFC 3461 §4.1 NOTIFY: NEVER alone, or a comma list of SUCCESS, FAILURE, DELAY (any case).
    /// Also reads back the form the queue keeps ("SUCCESS,FAILURE").
    /// </summary>
    public static bool TryParseNotify(string? value, out DsnNotify notify)
    {
        notify = DsnNotify.None;
        if (string.IsNullOrEmpty(value))
        {
            return false;
        }
        foreach (var word in value.Split(','))
        {
            var flag = word.Trim().ToUpperInvariant() switch
            {
                "NEVER" => DsnNotify.Never,
                "SUCCESS" => DsnNotify.Success,
                "FAILURE" => DsnNotify.Failure,
                "DELAY" => DsnNotify.Delay,
                _ => DsnNotify.None,
            };
            if (flag == DsnNotify.None)
            {
                return false;
            }
            notify |= flag;
        }
        return !notify.HasFlag(DsnNotify.Never) || notify == DsnNotify.Never;
    }

    /// <summary>Splits ESMTP parameters (RFC 5321 §4.1.2 esmtp-param) into key and value; a repeated key is an error.</summary>
    private static InvalidCommand? Parameters(string text, Verb verb, out List<(string Key, string? Value)> parameters)
    {
        parameters = [];
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var p in ParameterWords(text))
        {
            var eq = p.IndexOf('=');
            var key = eq < 0 ? p : p[..eq];
            if (!seen.Add(key))
            {
                return new InvalidCommand(verb, Reply.SyntaxError.WithText($"Duplicate parameter {Sanitize(key)}"));
            }
            parameters.Add((key, eq < 0 ? null : p[(eq + 1)..]));
        }
        return null;
    }

    /// <summary>Matches a keyword value (case-insensitive) against its allowed words.</summary>
    private static bool TryChoose<T>(string? value, out T result, params (string Word, T Value)[] choices)
    {
        foreach (var (word, v) in choices)
        {
            if (string.Equals(value, word, StringComparison.OrdinalIgnoreCase))
            {
                result = v;
                return true;
            }
        }
        result = default!;
        return false;
    }

    private static IEnumerable<string> ParameterWords(string s) =>
        s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(w => w.Length > 0 && w[0] != '<');

    // RFC 3461 §4: xtext = *( xchar / hexchar ), xchar = "!".."~" except "+" and "=".
    private static bool IsXtext(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '+')
            {
                if (i + 2 >= s.Length || !char.IsAsciiHexDigitUpper(s[i + 1]) || !char.IsAsciiHexDigitUpper(s[i + 2]))
                {
                    return false;
                }
                i += 2;
            }
            else if (c < 33 || c > 126 || c == '=')
            {
                return false;
            }
        }
        return true;
    }

    private static string Sanitize(string s) => s.Length > 20 ? s[..20] : s;
}
