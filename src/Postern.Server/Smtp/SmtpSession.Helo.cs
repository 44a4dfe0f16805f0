using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Protocol.Session;
using Postern.Server.Configuration;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>HELO/EHLO (RFC 5321 §4.1.1.1): resets any transaction and lists the extensions.</summary>
    private void Helo(HeloCommand helo)
    {
        ResetTransaction();
        _helo = helo.Domain;
        _extended = helo.Extended;
        _engine.Succeeded(helo);
        if (!helo.Extended)
        {
            Send(new SmtpReply(250, null, Options.Hostname));
            return;
        }
        // AUTH only over TLS (SPEC §4), and not again once authenticated (RFC 4954 §4).
        Send(SmtpEngine.EhloReply(Options.Hostname, helo.Domain, Ip, Options.Limits.MaxMessageSize,
            offerStartTls: !IsTls && _listener.Role != ListenerRole.Submissions, offerAuth: IsTls && _user is null));
    }
}
