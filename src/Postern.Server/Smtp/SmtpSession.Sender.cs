using Postern.Protocol.Addresses;
using Postern.Protocol.Replies;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// SPEC §4 for the header too: Postern DKIM-signs what its users send, so every address in the
    /// From: and Sender: fields (RFC 5322 §3.6.2) of an authenticated user's message must be one the
    /// user may send as, as the envelope sender must be (<see cref="Accounts.AddressBook.Owns"/>).
    /// Otherwise one user could sign mail in another's name. The header section is read back from
    /// the spool file, already bounded by Limits.MaxHeaderSize. False (refused, 550 5.7.1) when
    /// an address is not the user's.
    /// </summary>
    private async Task<bool> HeaderSendersOwnedAsync(Transaction t, SpoolWriter writer)
    {
        var headers = await ReadHeaderSectionAsync(writer);
        foreach (var field in new[] { MimeKit.HeaderId.From, MimeKit.HeaderId.Sender })
        {
            foreach (var header in headers.Where(h => h.Id == field))
            {
                if (NotOwned(header.RawValue) is { } address)
                {
                    Refuse(t.Bdat is null ? "DATA" : "BDAT", Reply.HeaderSenderNotOwned.WithText($"The {header.Field}: address {address} is not owned by the authenticated user"),
                        RefusalReason.SenderNotOwned, $"user {_user} may not send as {header.Field}: {address}");
                    ResetTransaction();
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>The message's header section, read back from the spool file (already bounded by Limits.MaxHeaderSize).</summary>
    private async Task<MimeKit.HeaderList> ReadHeaderSectionAsync(SpoolWriter writer)
    {
        await using var file = new BufferedStream(writer.ReadMessage(), 16 * 1024);
        return await MimeKit.HeaderList.LoadAsync(MimeKit.ParserOptions.Default, file, _ctx.ShuttingDown);
    }

    /// <summary>The first address of a From: or Sender: value the user may not send as (a group or an unparsable value counts as one), or null.</summary>
    private string? NotOwned(byte[] raw)
    {
        if (!MimeKit.InternetAddressList.TryParse(MimeKit.ParserOptions.Default, raw, out var list) || list.Count == 0)
        {
            return "(unreadable)";
        }
        foreach (var address in list)
        {
            if (address is not MimeKit.MailboxAddress mailbox)
            {
                return $"group \"{address.Name}\"";
            }
            if (AddressParser.TryParseMailbox(mailbox.Address, true, out var parsed) != AddressError.None || parsed is null || !_addresses.Owns(_user!, parsed))
            {
                return $"<{mailbox.Address}>";
            }
        }
        return null;
    }
}
