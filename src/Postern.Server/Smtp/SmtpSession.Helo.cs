using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
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
        _state = SessionState.Ready;
        if (!helo.Extended)
        {
            Send(new SmtpReply(250, null, Options.Hostname));
            return;
        }
        var lines = new List<string>
        {
            $"{Options.Hostname} Hello {helo.Domain} [{Ip}]",
            "PIPELINING",
            $"SIZE {Options.Limits.MaxMessageSize}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        };
        if (!IsTls && _listener.Role != ListenerRole.Submissions)
        {
            lines.Add("STARTTLS");
        }
        // AUTH only over TLS (SPEC §4), and not again once authenticated (RFC 4954 §4).
        if (IsTls && _user is null)
        {
            lines.Add("AUTH PLAIN LOGIN");
        }
        lines.Add("CHUNKING");
        lines.Add("DSN");
        Send(new SmtpReply(250, null, string.Join('\n', lines)));
    }
}
