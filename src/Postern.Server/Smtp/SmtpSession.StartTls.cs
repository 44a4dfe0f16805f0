using System.Net.Security;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// STARTTLS (RFC 3207). Anything the client pipelined behind the command is refused and the
    /// connection closed, so no plaintext byte is ever read as a command after the handshake
    /// (the CVE-2011-0411 class). After TLS the session starts over (RFC 3207 §4.2).
    /// </summary>
    private async Task StartTlsAsync()
    {
        if (IsTls || _listener.Role == ListenerRole.Submissions)
        {
            Refuse("STARTTLS", Reply.AlreadyTls, RefusalReason.BadSequence);
            return;
        }
        if (_reader.TryRead(out var pending))
        {
            // RFC 2920 §3.1, RFC 3207 §5: STARTTLS ends a pipelined group; the engine saw whether more
            // followed in the same read, this looks at what arrived since.
            var injected = _pipelinedAfterLast || !pending.Buffer.IsEmpty;
            _reader.AdvanceTo(pending.Buffer.Start);
            if (injected)
            {
                Refuse("STARTTLS", Reply.StartTlsPipelined, RefusalReason.StarttlsInjection, "command injection after STARTTLS");
                _closing = true;
                _closeReason = "data pipelined after STARTTLS";
                return;
            }
        }
        Send(Reply.ReadyToStartTls);
        await FlushAsync();
        if (!await StartTlsHandshakeAsync())
        {
            _closing = true;
            _closeReason = "tls handshake failed";
            return;
        }
        _engine.Restart();
        _engine.TlsRequiredButMissing = false;
        _helo = null;
        _extended = false;
        ResetTransaction();
    }

    /// <summary>Switches the connection to TLS; false (logged) when the handshake fails.</summary>
    private async Task<bool> StartTlsHandshakeAsync()
    {
        // The plaintext pipes are dropped: nothing buffered in them can cross into the TLS session.
        await _reader.CompleteAsync();
        await _writer.CompleteAsync();
        var tls = new SslStream(_network, leaveInnerStreamOpen: true);
        using var cts = new CancellationTokenSource(Options.Limits.CommandTimeout);
        try
        {
            await tls.AuthenticateAsServerAsync(_ctx.Tls, cts.Token);
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException or OperationCanceledException or ObjectDisposedException)
        {
            Log.TlsFailed(_ctx.Logger, _id, Ip, e.Message);
            await tls.DisposeAsync();
            _closeReason = "tls handshake failed";
            return false;
        }
        _tls = tls;
        (_reader, _writer) = CreatePipes(tls);
        _needMoreInput = false;
        Log.Tls(_ctx.Logger, _id, Ip, TlsNames.Version(tls.SslProtocol), tls.NegotiatedCipherSuite.ToString());
        return true;
    }
}
