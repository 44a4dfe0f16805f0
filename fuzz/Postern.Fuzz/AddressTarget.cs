using System.Text;
using Postern.Protocol.Addresses;

namespace Postern.Fuzz;

/// <summary>
/// <see cref="AddressParser"/> on arbitrary text (as UTF-8; the command parser refuses anything else
/// before an address is read). An accepted address holds no CR, LF, NUL or other control character,
/// keeps to the RFC 5321 §4.5.3.1 lengths, has no non-ASCII unless UTF-8 was allowed, and parses back
/// to itself from the form it is written in.
/// </summary>
public static class AddressTarget
{
    private const string PostmasterDomain = "example.test";

    public static void Run(ReadOnlySpan<byte> input)
    {
        var text = Encoding.UTF8.GetString(input);
        foreach (var allowUtf8 in new[] { false, true })
        {
            var reverse = AddressParser.TryParseReversePath(text, allowUtf8, out var from, out var rest);
            Expect.That(!allowUtf8 || reverse != AddressError.NeedsSmtpUtf8, "NeedsSmtpUtf8 although UTF-8 was allowed");
            if (reverse == AddressError.None)
            {
                Expect.That(text.TrimStart().EndsWith(rest, StringComparison.Ordinal), "what follows the path is not the end of the text");
                if (from.Mailbox is { } m)
                {
                    CheckAccepted(m, allowUtf8);
                }
            }
            var forward = AddressParser.TryParseForwardPath(text, allowUtf8, PostmasterDomain, out var to, out rest);
            if (forward == AddressError.None)
            {
                Expect.That(to is not null, "a forward path accepted without a mailbox");
                Expect.That(text.TrimStart().EndsWith(rest, StringComparison.Ordinal), "what follows the path is not the end of the text");
                CheckAccepted(to!.Mailbox, allowUtf8);
            }
            if (AddressParser.TryParseMailbox(text, allowUtf8, out var mailbox) == AddressError.None)
            {
                Expect.That(mailbox is not null, "a mailbox accepted without a value");
                CheckAccepted(mailbox!, allowUtf8);
                if (!allowUtf8)
                {
                    // Allowing UTF-8 never turns an accepted ASCII address into a different one.
                    Expect.That(AddressParser.TryParseMailbox(text, true, out var again) == AddressError.None && again == mailbox,
                        "an address accepted without SMTPUTF8 is refused or changed with it");
                }
            }
            if (AddressParser.IsDomain(text, allowUtf8))
            {
                Expect.That(!text.Any(c => char.IsControl(c) || char.IsWhiteSpace(c) || c is '@' or '<' or '>' or '[' or ']' or '"'),
                    "a domain with a control, space or delimiter character");
                Expect.That(allowUtf8 || text.All(char.IsAscii), "a non-ASCII domain without SMTPUTF8");
            }
        }
        if (AddressParser.IsAddressLiteral(text))
        {
            Expect.That(text.All(c => c is >= '!' and <= '~'), "an address literal with something other than printable ASCII");
        }
    }

    /// <summary>The invariants of every accepted mailbox, wherever it was parsed.</summary>
    public static void CheckAccepted(Mailbox m, bool allowUtf8)
    {
        Expect.That(m.LocalPart.Length > 0 && m.Domain.Length > 0, "an empty local part or domain");
        Expect.That(!m.LocalPart.Any(IsForbidden) && !m.Domain.Any(IsForbidden), "CR, LF, NUL or another control character in an accepted address");
        var international = m.LocalPart.Any(c => c > 127) || m.Domain.Any(c => c > 127);
        Expect.That(m.IsInternational == international, "IsInternational does not match the characters");
        Expect.That(allowUtf8 || !international, "a non-ASCII address without SMTPUTF8");
        var local = Encoding.UTF8.GetByteCount(m.LocalPart);
        var domain = Encoding.UTF8.GetByteCount(m.Domain);
        Expect.That(local <= AddressParser.MaxLocalPart && domain <= AddressParser.MaxDomain && local + 1 + domain <= AddressParser.MaxPath - 2,
            "an address over the RFC 5321 §4.5.3.1 lengths");
        Expect.That(m.IsAddressLiteral ? AddressParser.IsAddressLiteral(m.Domain) : AddressParser.IsDomain(m.Domain, allowUtf8),
            "the domain of an accepted address is not a domain");
        Expect.That(AddressParser.TryParseMailbox(m.Address, allowUtf8, out var again) == AddressError.None && again == m,
            $"the address does not parse back to itself from {m.Address}");
    }

    private static bool IsForbidden(char c) => c < 32 || c == 127;
}
