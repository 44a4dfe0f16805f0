using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// RCPT TO (RFC 5321 §4.1.1.3): local recipients must exist; anything else is relaying, allowed
    /// only to an authenticated user or, on the mx role, a trusted network. No open relay in any form.
    /// </summary>
    private void Rcpt(RcptCommand rcpt)
    {
        var t = _transaction!;
        var to = rcpt.To.Mailbox;
        var key = RecipientKey(to);
        if (t.RecipientKeys.Contains(key))
        {
            // RFC 5321 §3.3: a server may keep one copy of a recipient given twice. Stored once, so
            // 100 identical RCPTs make one copy, not 100 (issue 12); answered 250 because the address
            // was accepted; not counted against Limits.MaxRecipients nor the hourly rates (it adds no
            // work), but counted as junk by the loop (it moves no mail), so repeating it is bounded.
            _engine.CountJunk();
            Send(Reply.DuplicateRecipient);
            return;
        }
        if (t.Recipients.Count >= Options.Limits.MaxRecipients)
        {
            Refuse("RCPT", Reply.TooManyRecipients, RefusalReason.TooManyRecipients);
            return;
        }
        if (to.IsInternational && !t.Mail.SmtpUtf8)
        {
            Refuse("RCPT", Reply.Utf8AddressNeedsSmtpUtf8, RefusalReason.Smtputf8Required, $"to=<{to}>");
            return;
        }
        var kind = _addresses.Classify(to);
        switch (kind)
        {
            case RecipientKind.AddressLiteral:
                Refuse("RCPT", Reply.AddressLiteralRefused, RefusalReason.AddressLiteral, $"to=<{to}>");
                return;
            case RecipientKind.UnknownLocal:
                Refuse("RCPT", Reply.UnknownUser, RefusalReason.UnknownUser, $"to=<{to}>");
                return;
            case RecipientKind.Remote:
                var mayRelay = _user is not null || (_listener.Role == ListenerRole.Mx && _config.IsTrusted(RemoteIp));
                if (!mayRelay)
                {
                    Refuse("RCPT", Reply.RelayDenied, RefusalReason.RelayDenied, $"to=<{to}>");
                    return;
                }
                break;
        }
        if (!_ctx.ClientLimits.TryRecipient(_config, RemoteIp, _user))
        {
            Refuse("RCPT", Reply.RecipientRateExceeded, RefusalReason.Rate, _user is null ? $"recipients per hour from {Limits.ClientKey.Describe(Limits.ClientKey.For(RemoteIp))}" : $"recipients per hour of user {_user}");
            return;
        }
        t.Recipients.Add(new EnvelopeRecipient
        {
            Address = to.Address,
            Local = kind == RecipientKind.Local,
            Notify = rcpt.Notify == DsnNotify.None ? null : rcpt.Notify.ToString().ToUpperInvariant().Replace(" ", "", StringComparison.Ordinal),
            ORcpt = rcpt.ORcpt,
        });
        t.RecipientKeys.Add(key);
        _engine.Succeeded(rcpt);
        Send(Reply.RecipientOk);
    }

    /// <summary>
    /// How two recipients are compared, as the address book compares them: an address of a local
    /// domain without case (accounts and aliases are matched so), any other with its domain without
    /// case (RFC 5321 §2.4) but its local part as written (only its own server may fold it).
    /// </summary>
    private string RecipientKey(Protocol.Addresses.Mailbox to) =>
        !to.IsAddressLiteral && _addresses.IsLocalDomain(to.Domain) ? to.Address.ToLowerInvariant() : $"{to.LocalPart}@{to.DomainKey}";
}
