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
        _state = SessionState.Rcpt;
        Send(Reply.RecipientOk);
    }
}
