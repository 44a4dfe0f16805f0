using System.Buffers;
using System.Globalization;
using System.Text;
using Postern.Protocol.Addresses;
using Postern.Protocol.Commands;
using Postern.Protocol.Parsing;

namespace Postern.Fuzz;

/// <summary>
/// A stream of command lines as the session reads it: <see cref="LineReader"/> cuts lines (512 octets,
/// CRLF only) from input split every way <see cref="Chunking"/> knows, and must cut the same lines
/// whatever the split; each line goes through <see cref="CommandParser"/>, and every command it
/// accepts is checked again: its verb matches the line, its values are well-formed, and written back
/// as a command line it parses to the same command.
/// </summary>
public static class CommandTarget
{
    /// <summary>RFC 5321 §4.5.3.1.4, as SmtpSession reads commands.</summary>
    public const int CommandLineLimit = 512;

    private const string PostmasterDomain = "example.test";

    private static readonly string[] Verbs =
        ["HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH"];

    public static void Run(ReadOnlySpan<byte> input)
    {
        var bytes = input.ToArray();
        List<string>? first = null;
        foreach (var pieces in Chunking.Of(input))
        {
            var events = ReadLines(bytes, pieces, check: first is null);
            if (first is null)
            {
                first = events;
                continue;
            }
            Expect.That(events.SequenceEqual(first), "the lines cut depend on how the input was split");
        }
    }

    /// <summary>
    /// Feeds the pieces one by one like SmtpSession.ParseOne: what is not consumed stays buffered, and
    /// the buffer is a sequence with one segment per piece, so lines straddle segments as they do in a pipe.
    /// </summary>
    private static List<string> ReadLines(byte[] bytes, int[] pieces, bool check)
    {
        var events = new List<string>();
        var whole = Chunking.ToSequence(bytes, pieces);
        var unconsumed = whole.Start;
        var received = whole.Start;
        var skippingLongLine = false;
        foreach (var n in pieces)
        {
            received = whole.GetPosition(n, received);
            while (true)
            {
                var buffer = whole.Slice(unconsumed, received);
                var reader = new SequenceReader<byte>(buffer);
                if (skippingLongLine)
                {
                    skippingLongLine = !LineReader.SkipPastLineFeed(ref reader);
                    if (skippingLongLine)
                    {
                        Expect.That(reader.End, "skipping a long line stopped before the end of the input");
                        unconsumed = reader.Position;
                        break;
                    }
                }
                var before = reader.Consumed;
                var status = LineReader.TryRead(ref reader, CommandLineLimit, out var line);
                if (status == LineStatus.Incomplete)
                {
                    Expect.That(reader.Consumed == before, "Incomplete consumed something");
                    Expect.That(buffer.Length - before < CommandLineLimit, "Incomplete with a full line's worth buffered");
                    unconsumed = reader.Position;
                    break;
                }
                Expect.That(reader.Consumed > before, "a line status without consuming anything");
                switch (status)
                {
                    case LineStatus.Line:
                        var text = line.ToArray();
                        Expect.That(text.Length + 2 <= CommandLineLimit, "a line over the limit");
                        Expect.That(!text.Contains((byte)'\r') && !text.Contains((byte)'\n'), "a CR or LF inside a line");
                        Expect.That(buffer.Slice(before, reader.Consumed - before).ToArray().AsSpan().SequenceEqual([.. text, (byte)'\r', (byte)'\n']),
                            "what was consumed is not the line and its CRLF");
                        events.Add("line " + Convert.ToHexString(text));
                        if (check)
                        {
                            CheckCommand(text);
                        }
                        break;
                    case LineStatus.TooLong:
                        Expect.That(reader.Consumed - before == CommandLineLimit, "TooLong after other than the limit");
                        events.Add("too long");
                        skippingLongLine = true;
                        break;
                    default:
                        events.Add("bare");
                        break;
                }
                unconsumed = reader.Position;
            }
        }
        events.Add("left " + whole.Slice(unconsumed).Length.ToString(CultureInfo.InvariantCulture));
        return events;
    }

    /// <summary>The invariants of one parsed command line.</summary>
    public static void CheckCommand(byte[] line)
    {
        var command = CommandParser.Parse(line, PostmasterDomain);
        var space = Array.IndexOf(line, (byte)' ');
        var word = Encoding.Latin1.GetString(space < 0 ? line : line[..space]);
        var verb = Verbs.FirstOrDefault(v => v.Equals(word, StringComparison.OrdinalIgnoreCase));
        Expect.That(verb is null ? command.Verb == Verb.Unknown : command.Verb.ToString().Equals(verb, StringComparison.OrdinalIgnoreCase),
            $"verb {command.Verb} for a line starting {word}");
        var args = space < 0 ? "" : Encoding.UTF8.GetString(line, space + 1, line.Length - space - 1);
        switch (command)
        {
            case InvalidCommand invalid:
                Expect.That(invalid.Reply.Code is >= 500 and < 600, "an invalid command with other than a 5xx reply");
                return;
            case SimpleCommand { Verb: Verb.Data or Verb.Rset or Verb.Quit or Verb.StartTls }:
                Expect.That(args.Trim().Length == 0, "DATA, RSET, QUIT or STARTTLS accepted with an argument");
                return;
            case HeloCommand helo:
                Expect.That(helo.Domain.Length > 0 && helo.Domain.All(c => c is >= '!' and <= '~'), "a HELO domain that is not one printable ASCII word");
                break;
            case MailCommand mail:
                if (mail.From.Mailbox is { } from)
                {
                    AddressTarget.CheckAccepted(from, mail.SmtpUtf8);
                }
                Expect.That(mail.Size is null or >= 0, "a negative SIZE");
                Expect.That(mail.EnvId is null || mail.EnvId.Length <= 100 && mail.EnvId.All(c => c is >= '!' and <= '~' and not '='), "ENVID is not xtext");
                // RFC 6531 §3.4: SMTPUTF8 is a parameter of MAIL, after the path; text inside the path is not a parameter.
                var afterFrom = args.Length >= 5 ? args[5..] : "";
                Expect.That(AddressParser.TryParseReversePath(afterFrom, true, out _, out var parameters) == AddressError.None,
                    "MAIL accepted with a path that does not parse");
                Expect.That(mail.SmtpUtf8 == parameters.Split(' ').Any(w => w.Equals("SMTPUTF8", StringComparison.OrdinalIgnoreCase)),
                    "SMTPUTF8 taken from elsewhere than the parameters after the path");
                break;
            case RcptCommand rcpt:
                AddressTarget.CheckAccepted(rcpt.To.Mailbox, allowUtf8: true);
                break;
            case BdatCommand bdat:
                Expect.That(bdat.Size >= 0, "a negative BDAT size");
                break;
            case AuthCommand auth:
                Expect.That(auth.Mechanism.Length > 0 && !auth.Mechanism.Contains(' ') && auth.Mechanism == auth.Mechanism.ToUpperInvariant(), "an AUTH mechanism that is not one upper-case word");
                Expect.That(auth.InitialResponse is null || auth.InitialResponse.Length > 0 && !auth.InitialResponse.Contains(' '), "an initial response that is not one word");
                break;
        }
        if (Render(command) is { } again)
        {
            var reparsed = CommandParser.Parse(Encoding.UTF8.GetBytes(again), PostmasterDomain);
            Expect.That(reparsed == command, $"{command} written as \"{again}\" parses to {reparsed}");
        }
    }

    /// <summary>A command written back as a line in its canonical form; null for those with nothing to check.</summary>
    private static string? Render(SmtpCommand command) => command switch
    {
        HeloCommand h => $"{(h.Extended ? "EHLO" : "HELO")} {h.Domain}",
        MailCommand m => $"MAIL FROM:<{m.From}>"
            + (m.Size is { } size ? $" SIZE={size.ToString(CultureInfo.InvariantCulture)}" : "")
            + (m.Body == BodyType.EightBitMime ? " BODY=8BITMIME" : "")
            + (m.SmtpUtf8 ? " SMTPUTF8" : "")
            + (m.Ret switch { DsnReturn.Full => " RET=FULL", DsnReturn.Headers => " RET=HDRS", _ => "" })
            + (m.EnvId is { } envId ? $" ENVID={envId}" : ""),
        RcptCommand r => $"RCPT TO:<{(r.To.HadSourceRoute ? "@relay.example:" : "")}{r.To.Mailbox.Address}>"
            + (r.Notify == DsnNotify.None ? "" : " NOTIFY=" + r.Notify.ToString().Replace(" ", "", StringComparison.Ordinal).ToUpperInvariant())
            + (r.ORcpt is { } orcpt ? $" ORCPT={orcpt}" : ""),
        BdatCommand b => $"BDAT {b.Size.ToString(CultureInfo.InvariantCulture)}{(b.Last ? " LAST" : "")}",
        AuthCommand a => $"AUTH {a.Mechanism}{(a.InitialResponse is { } ir ? " " + ir : "")}",
        _ => null,
    };
}
