using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>MAIL FROM (RFC 5321 §4.1.1.2), with SIZE (RFC 1870), BODY, SMTPUTF8 and DSN RET/ENVID.</summary>
    private async Task MailAsync(MailCommand mail)
    {
        if (_shutdownRequested)
        {
            Send(ClosingReply);
            _closing = true;
            _closeReason = ClosingReason;
            return;
        }
        // Submission roles take nothing without AUTH (RFC 6409 §4.3, RFC 8314).
        if (_listener.Role != ListenerRole.Mx && _user is null)
        {
            Refuse("MAIL", Reply.AuthRequired, RefusalReason.AuthRequired);
            return;
        }
        if (mail.Size is { } size && size > Options.Limits.MaxMessageSize)
        {
            Refuse("MAIL", Reply.MessageTooBig, RefusalReason.TooBig, $"SIZE={size} over Limits.MaxMessageSize");
            return;
        }
        if (_user is not null)
        {
            // SPEC §4: an authenticated user sends only as an address that is theirs.
            if (mail.From.Mailbox is not { } from || !_addresses.Owns(_user, from))
            {
                Refuse("MAIL", Reply.SenderNotOwned, RefusalReason.SenderNotOwned, $"user {_user} may not send as <{mail.From}>");
                return;
            }
        }
        if (!_ctx.ClientLimits.TryMessage(_config, RemoteIp, _user))
        {
            Refuse("MAIL", Reply.MessageRateExceeded, RefusalReason.Rate, _user is null ? $"messages per hour from {Limits.ClientKey.Describe(Limits.ClientKey.For(RemoteIp))}" : $"messages per hour of user {_user}");
            return;
        }
        var spf = await CheckSpfAsync(mail);
        if (spf?.Result == Postern.MailAuth.AuthResult.Fail && MailAuthPolicy.RejectSpfFail)
        {
            Refuse("MAIL", Reply.SpfFail.WithText($"SPF check failed: {Printable(spf.Explanation ?? spf.Reason, 200)}"), RefusalReason.Spf, $"spf=fail {spf.Reason}");
            return;
        }
        _transaction = new Transaction(mail, QueueId.New(_ctx.Time.GetUtcNow()));
        _transaction.Spf = spf;
        if (spf is not null)
        {
            _transaction.AuthResults.Add(new Postern.MailAuth.AuthenticationResults.MethodResult("spf", spf.Result, spf.Reason,
                [mail.From.Mailbox is null ? ("smtp.helo", _helo ?? "") : ("smtp.mailfrom", spf.Sender)]));
        }
        else if (_user is not null && MailAuthPolicy.Enabled)
        {
            // RFC 8601 §2.7.4: what a local copy of a user's own mail says about its sender.
            _transaction.AuthResults.Add(new Postern.MailAuth.AuthenticationResults.MethodResult("auth", Postern.MailAuth.AuthResult.Pass, null, [("smtp.auth", _user)]));
        }
        _engine.Succeeded(mail);
        Send(Reply.SenderOk);
    }

    /// <summary>
    /// SPF (RFC 7208) for mail from other servers: on the mx role, not for authenticated users nor
    /// (unless MailAuth.SkipTrustedNetworks is off) trusted networks, when MailAuth.Enabled (the
    /// listener's own settings first). Null when not checked; then nothing else is checked either.
    /// </summary>
    private async Task<Postern.MailAuth.Spf.SpfOutcome?> CheckSpfAsync(MailCommand mail)
    {
        if (!MailAuthPolicy.Enabled || _listener.Role != ListenerRole.Mx || _user is not null || (MailAuthPolicy.SkipTrustedNetworks && _config.IsTrusted(RemoteIp)))
        {
            return null;
        }
        return await _ctx.Spf.CheckMailFromAsync(RemoteIp, mail.From.Mailbox?.Address ?? "", _helo ?? "", _ctx.ShuttingDown);
    }
}
