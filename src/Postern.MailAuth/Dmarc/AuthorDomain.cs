using System.Text;
using MimeKit;

namespace Postern.MailAuth.Dmarc;

/// <summary>Why a message has no single Author Domain (RFC 7489 §6.6.1).</summary>
public enum AuthorProblem
{
    /// <summary>Exactly one From field with exactly one address that has a domain.</summary>
    None,
    /// <summary>No From field at all (RFC 5322 §3.6 requires one).</summary>
    NoFromField,
    /// <summary>More than one From field (RFC 5322 §3.6 allows one).</summary>
    MultipleFromFields,
    /// <summary>One From field with several mailboxes (RFC 5322 §3.6.2 allows it; DMARC cannot pick one).</summary>
    MultipleAddresses,
    /// <summary>A From field with no mailbox in it: empty, an empty group, or unparseable.</summary>
    NoAddress,
    /// <summary>A mailbox without a usable domain: no @, an address literal, an invalid name.</summary>
    NoDomain,
}

/// <summary>
/// The RFC5322.From domain DMARC evaluates (RFC 7489 §3.1, §6.6.1), taken from the message's From
/// field(s). RFC 7489 §6.6.1: DMARC needs exactly one From field holding exactly one domain; other
/// messages are outside its scope and reported here as an <see cref="AuthorProblem"/>, so that
/// <see cref="DmarcEvaluator"/> (and the session) can treat them distinctly rather than guess.
/// </summary>
/// <remarks>
/// The reader is deliberately lenient about the rest of the syntax, because it only needs the domain
/// of each mailbox: comments and quoted display names are skipped (so a comma or an address inside
/// them does not count), group syntax is flattened (RFC 6854), stray angle brackets are tolerated,
/// an obsolete source route is dropped, and a stray prefix such as "Mail From:" reads as a group name.
/// It reads the raw field, never the decoded one: a display name encoded as
/// <c>=?utf-8?q?ceo=40bank.example_=3C?=</c> must not turn into an address.
/// </remarks>
public sealed class AuthorDomain
{
    private AuthorDomain(AuthorProblem problem, IReadOnlyList<string> domains)
    {
        Problem = problem;
        Domains = domains;
    }

    /// <summary><see cref="AuthorProblem.None"/> when there is one usable Author Domain.</summary>
    public AuthorProblem Problem { get; }

    /// <summary>The Author Domain (lower-case A-labels) when <see cref="Problem"/> is None; otherwise null.</summary>
    public string? Domain => Problem == AuthorProblem.None ? Domains[0] : null;

    /// <summary>Every distinct usable domain found in the From field(s), in order (several when Problem is MultipleFromFields or MultipleAddresses).</summary>
    public IReadOnlyList<string> Domains { get; }

    /// <summary>The Author Domain of a message, from its header's From fields.</summary>
    public static AuthorDomain FromHeaders(HeaderList headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        var values = new List<string>();
        foreach (var header in headers)
        {
            if (header.Id == HeaderId.From)
            {
                // The raw value: encoded-words stay encoded. UTF-8 per RFC 6532.
                values.Add(Encoding.UTF8.GetString(header.RawValue));
            }
        }
        return FromFieldValues(values);
    }

    /// <summary>The Author Domain from the values of the message's From fields (one string per field, folded or not).</summary>
    public static AuthorDomain FromFieldValues(IReadOnlyList<string> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            return new AuthorDomain(AuthorProblem.NoFromField, []);
        }
        var domains = new List<string>();
        var mailboxes = 0;
        foreach (var value in values)
        {
            foreach (var domain in MailboxDomains(value))
            {
                mailboxes++;
                if (domain is not null && !domains.Contains(domain))
                {
                    domains.Add(domain);
                }
            }
        }
        var problem = values.Count > 1 ? AuthorProblem.MultipleFromFields
            : mailboxes > 1 ? AuthorProblem.MultipleAddresses
            : mailboxes == 0 ? AuthorProblem.NoAddress
            : domains.Count == 0 ? AuthorProblem.NoDomain
            : AuthorProblem.None;
        return new AuthorDomain(problem, domains);
    }

    /// <summary>One entry per mailbox in a From field value: its normalized domain, or null when it has none.</summary>
    internal static List<string?> MailboxDomains(string value)
    {
        var result = new List<string?>();
        var mailbox = new List<Token>();
        var depth = 0;
        foreach (var token in Tokenize(value))
        {
            if (depth == 0 && token.Kind == TokenKind.Special && token.Text is "," or ";")
            {
                // End of a mailbox (",") or of a group (";").
                Flush(mailbox, result);
                continue;
            }
            if (depth == 0 && token.Kind == TokenKind.Special && token.Text == ":")
            {
                // RFC 6854 group: what came before is the group's display name (or a stray "Mail From:").
                mailbox.Clear();
                continue;
            }
            if (token.Kind == TokenKind.Special && token.Text == "<")
            {
                depth++;
            }
            else if (token.Kind == TokenKind.Special && token.Text == ">")
            {
                depth = Math.Max(0, depth - 1);
            }
            mailbox.Add(token with { Depth = depth });
        }
        Flush(mailbox, result);
        return result;
    }

    private static void Flush(List<Token> mailbox, List<string?> result)
    {
        if (mailbox.Count > 0)
        {
            result.Add(DomainOf(mailbox));
            mailbox.Clear();
        }
    }

    /// <summary>
    /// The domain of one mailbox: from the angle-addr when there is one, else from the bare addr-spec.
    /// Either must hold exactly one "@", except that an obsolete source route ("&lt;@a,@b:joe@c&gt;",
    /// RFC 5322 §4.4) ends in ":" before the address. Anything else ("a@b.example@c.example", an
    /// unclosed "&lt;" swallowing the next mailbox) is ambiguous, so it has no domain.
    /// </summary>
    private static string? DomainOf(List<Token> tokens)
    {
        int inAngle = -1, angleCount = 0, bare = -1, bareCount = 0, routeEnd = -1;
        for (var i = 0; i < tokens.Count; i++)
        {
            if (tokens[i].Kind != TokenKind.Special)
            {
                continue;
            }
            if (tokens[i].Text == ":" && tokens[i].Depth > 0)
            {
                routeEnd = i;
            }
            else if (tokens[i].Text == "@" && tokens[i].Depth > 0)
            {
                inAngle = i;
                angleCount++;
            }
            else if (tokens[i].Text == "@")
            {
                bare = i;
                bareCount++;
            }
        }
        var at = angleCount == 1 || (angleCount > 1 && routeEnd >= 0 && routeEnd < inAngle && CountAt(tokens, routeEnd, inAngle) == 0) ? inAngle
            : angleCount == 0 && bareCount == 1 ? bare
            : -1;
        if (at < 0 || at + 1 >= tokens.Count || tokens[at + 1].Kind != TokenKind.Word)
        {
            return null;
        }
        return DmarcAlignment.Normalize(tokens[at + 1].Text);
    }

    private static int CountAt(List<Token> tokens, int from, int to)
    {
        var count = 0;
        for (var i = from + 1; i < to; i++)
        {
            if (tokens[i].Kind == TokenKind.Special && tokens[i].Text == "@")
            {
                count++;
            }
        }
        return count;
    }

    private enum TokenKind
    {
        Word,
        Quoted,
        Literal,
        Special,
    }

    private readonly record struct Token(TokenKind Kind, string Text, int Depth = 0);

    /// <summary>RFC 5322 §3.2 lexical tokens of an address field; comments and folding white space are dropped.</summary>
    private static IEnumerable<Token> Tokenize(string value)
    {
        var i = 0;
        while (i < value.Length)
        {
            var c = value[i];
            if (c is ' ' or '\t' or '\r' or '\n')
            {
                i++;
            }
            else if (c == '(')
            {
                // A comment, which may nest (RFC 5322 §3.2.2); an unclosed one runs to the end.
                var nesting = 0;
                for (; i < value.Length; i++)
                {
                    if (value[i] == '\\')
                    {
                        i++;
                    }
                    else if (value[i] == '(')
                    {
                        nesting++;
                    }
                    else if (value[i] == ')' && --nesting == 0)
                    {
                        i++;
                        break;
                    }
                }
            }
            else if (c == '"')
            {
                var text = new StringBuilder();
                for (i++; i < value.Length && value[i] != '"'; i++)
                {
                    if (value[i] == '\\' && i + 1 < value.Length)
                    {
                        i++;
                    }
                    text.Append(value[i]);
                }
                i++;
                yield return new Token(TokenKind.Quoted, text.ToString());
            }
            else if (c == '[')
            {
                var end = value.IndexOf(']', i);
                end = end < 0 ? value.Length : end + 1;
                yield return new Token(TokenKind.Literal, value[i..end]);
                i = end;
            }
            else if (c is '<' or '>' or ',' or ':' or ';' or '@')
            {
                yield return new Token(TokenKind.Special, c.ToString());
                i++;
            }
            else
            {
                // An atom or dot-atom (any other character, including UTF-8 per RFC 6532, joins it).
                var start = i;
                while (i < value.Length && value[i] is not (' ' or '\t' or '\r' or '\n' or '(' or '"' or '[' or '<' or '>' or ',' or ':' or ';' or '@'))
                {
                    i++;
                }
                yield return new Token(TokenKind.Word, value[start..i]);
            }
        }
    }
}
