using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Postern.Protocol.Replies;

namespace Postern.Server.Filters.Milter;

/// <summary>A reply that breaks the protocol: the milter is treated as unavailable.</summary>
public sealed class MilterProtocolException(string message) : Exception(message);

/// <summary>One reply frame from the milter, parsed (sans I/O): a closed set.</summary>
internal abstract partial record MilterReply
{
    private MilterReply()
    {
    }

    /// <summary>SMFIC_OPTNEG's answer: the milter's version, the actions and steps it chose, its macro lists.</summary>
    public sealed record Negotiated(uint Version, MilterActions Actions, MilterSteps Steps, IReadOnlyDictionary<MilterStage, string[]> Macros) : MilterReply;

    /// <summary>A final answer to a command: accept, continue, reject, tempfail, discard, skip (SMFIR_*).</summary>
    public sealed record Decision(byte Code, SmtpReply? Reply) : MilterReply;

    /// <summary>SMFIR_PROGRESS: still working; the timeout starts again.</summary>
    public sealed record Progress : MilterReply;

    /// <summary>A change asked for at end of message.</summary>
    public sealed record Change(MilterModification Modification, MilterActions Needs) : MilterReply;

    /// <summary>A chunk of a replaced body (SMFIR_REPLBODY).</summary>
    public sealed record BodyChunk(ReadOnlyMemory<byte> Data) : MilterReply;

    /// <summary>Parses the data of a frame whose command byte is <paramref name="code"/>.</summary>
    public static MilterReply Parse(byte code, ReadOnlyMemory<byte> data)
    {
        var d = data.Span;
        switch (code)
        {
            case MilterReplyCode.OptionNegotiation:
                return ParseNegotiation(d);
            case MilterReplyCode.Accept or MilterReplyCode.Continue or MilterReplyCode.Discard or MilterReplyCode.Reject
                or MilterReplyCode.TempFail or MilterReplyCode.Skip:
                return new Decision(code, null);
            case MilterReplyCode.ReplyCode:
                return new Decision(code, ParseSmtpReply(CStrings(d, 1, 1)[0]));
            case MilterReplyCode.Progress:
                return new Progress();
            case MilterReplyCode.ReplaceBody:
                return new BodyChunk(data);
            case MilterReplyCode.AddHeader:
                {
                    var s = CStrings(d, 2, 2);
                    return new Change(new MilterModification.AddHeader(s[0], s[1]), MilterActions.AddHeaders);
                }
            case MilterReplyCode.InsertHeader:
                {
                    var index = Index(d);
                    var s = CStrings(d[4..], 2, 2);
                    return new Change(new MilterModification.InsertHeader(index, s[0], s[1]), MilterActions.AddHeaders);
                }
            case MilterReplyCode.ChangeHeader:
                {
                    var index = Index(d);
                    var s = CStrings(d[4..], 1, 2);
                    // libmilter's smfi_chgheader with a NULL value sends an empty one: delete (mfapi.h).
                    var change = s.Length < 2 || s[1].Length == 0
                        ? (MilterModification)new MilterModification.DeleteHeader(index, s[0])
                        : new MilterModification.ChangeHeader(index, s[0], s[1]);
                    return new Change(change, MilterActions.ChangeHeaders);
                }
            case MilterReplyCode.ChangeFrom:
                {
                    var s = CStrings(d, 1, 2);
                    return new Change(new MilterModification.ChangeSender(s[0], s.Length > 1 && s[1].Length > 0 ? s[1] : null), MilterActions.ChangeFrom);
                }
            case MilterReplyCode.AddRcpt:
                return new Change(new MilterModification.AddRecipient(CStrings(d, 1, 1)[0], null), MilterActions.AddRcpt);
            case MilterReplyCode.AddRcptWithArgs:
                {
                    var s = CStrings(d, 1, 2);
                    return new Change(new MilterModification.AddRecipient(s[0], s.Length > 1 && s[1].Length > 0 ? s[1] : null), MilterActions.AddRcptWithArgs);
                }
            case MilterReplyCode.DeleteRcpt:
                return new Change(new MilterModification.DeleteRecipient(CStrings(d, 1, 1)[0]), MilterActions.DeleteRcpt);
            case MilterReplyCode.Quarantine:
                return new Change(new MilterModification.Quarantine(CStrings(d, 1, 1)[0]), MilterActions.Quarantine);
            case MilterReplyCode.Shutdown or MilterReplyCode.ConnectionFail:
                // Neither is a verdict Postern can act on mid-dialogue; both mean the milter is gone.
                throw new MilterProtocolException($"the milter closed the connection ('{(char)code}')");
            default:
                throw new MilterProtocolException($"unknown reply '{Printable(code)}'");
        }
    }

    private static Negotiated ParseNegotiation(ReadOnlySpan<byte> d)
    {
        if (d.Length < 12)
        {
            throw new MilterProtocolException($"option negotiation reply of {d.Length} bytes, at least 12 expected");
        }
        var version = BinaryPrimitives.ReadUInt32BigEndian(d);
        var actions = (MilterActions)BinaryPrimitives.ReadUInt32BigEndian(d[4..]);
        var steps = (MilterSteps)BinaryPrimitives.ReadUInt32BigEndian(d[8..]);
        var macros = new Dictionary<MilterStage, string[]>();
        var rest = d[12..];
        // Version 6 (mfdef.h, SMFIF_SETSYMLIST): pairs of a 32-bit stage and a NUL-terminated list of names.
        while (rest.Length > 0)
        {
            if (rest.Length < 5)
            {
                throw new MilterProtocolException("option negotiation reply: a macro list cut short");
            }
            var stage = BinaryPrimitives.ReadUInt32BigEndian(rest);
            rest = rest[4..];
            var nul = rest.IndexOf((byte)0);
            if (nul < 0)
            {
                throw new MilterProtocolException("option negotiation reply: a macro list without its NUL");
            }
            var names = Encoding.UTF8.GetString(rest[..nul]).Split([' ', ','], StringSplitOptions.RemoveEmptyEntries);
            rest = rest[(nul + 1)..];
            if (stage <= (uint)MilterStage.EndOfHeaders)
            {
                macros[(MilterStage)stage] = names.Select(MilterMacros.Bare).ToArray();
            }
            // An unknown stage is left out, as Postfix does ("ignoring unknown macro type").
        }
        return new Negotiated(version, actions, steps, macros);
    }

    private static int Index(ReadOnlySpan<byte> d)
    {
        if (d.Length < 4)
        {
            throw new MilterProtocolException("header change without its index");
        }
        var index = BinaryPrimitives.ReadUInt32BigEndian(d);
        return index > int.MaxValue ? int.MaxValue : (int)index;
    }

    /// <summary>Between <paramref name="min"/> and <paramref name="max"/> NUL-terminated strings filling the data exactly.</summary>
    private static string[] CStrings(ReadOnlySpan<byte> d, int min, int max)
    {
        var result = new List<string>(max);
        while (d.Length > 0)
        {
            var nul = d.IndexOf((byte)0);
            if (nul < 0)
            {
                throw new MilterProtocolException("a string without its NUL");
            }
            if (result.Count == max)
            {
                throw new MilterProtocolException($"more than {max} strings in one reply");
            }
            result.Add(Encoding.UTF8.GetString(d[..nul]));
            d = d[(nul + 1)..];
        }
        if (result.Count < min)
        {
            throw new MilterProtocolException($"{result.Count} strings in a reply that needs {min}");
        }
        return result.ToArray();
    }

    /// <summary>
    /// SMFIR_REPLYCODE's text: "550 5.7.1 words", or several lines "550-5.7.1 one\r\n550 5.7.1 two"
    /// (smfi_setmlreply). Only 4xx and 5xx are allowed (libmilter's smfi_setreply refuses others).
    /// </summary>
    internal static SmtpReply ParseSmtpReply(string text)
    {
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd('\n').Split('\n');
        int? code = null;
        string? enhanced = null;
        var words = new List<string>();
        foreach (var line in lines)
        {
            var m = ReplyLine().Match(line);
            if (!m.Success)
            {
                throw new MilterProtocolException($"reply code text '{Shorten(text)}' is not a 4xx or 5xx SMTP reply");
            }
            var c = int.Parse(m.Groups["code"].Value, CultureInfo.InvariantCulture);
            if (code is not null && c != code)
            {
                throw new MilterProtocolException($"reply code text '{Shorten(text)}' mixes codes");
            }
            code = c;
            enhanced ??= m.Groups["enhanced"].Success ? m.Groups["enhanced"].Value : null;
            words.Add(m.Groups["text"].Value);
        }
        // RFC 3463 §3.1: the class of the enhanced code agrees with the reply code's first digit.
        if (enhanced is not null && enhanced[0] != code!.Value.ToString(CultureInfo.InvariantCulture)[0])
        {
            enhanced = code >= 500 ? "5.7.1" : "4.7.1";
        }
        var joined = string.Join('\n', words);
        return new SmtpReply(code!.Value, enhanced ?? (code >= 500 ? "5.7.1" : "4.7.1"), joined.Length == 0 ? "Command rejected" : joined);
    }

    [GeneratedRegex(@"^(?<code>[45][0-9][0-9])(?:[ -](?:(?<enhanced>[245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$))?(?<text>.*))?$")]
    private static partial Regex ReplyLine();

    private static string Shorten(string s) => s.Length > 80 ? s[..80] + "…" : s;

    internal static string Printable(byte b) => b is >= 0x21 and < 0x7F ? ((char)b).ToString() : $"0x{b:X2}";
}
