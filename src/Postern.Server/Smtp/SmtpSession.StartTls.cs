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
        var started = _ctx.Time.GetUtcNow();
        Send(Reply.ReadyToStartTls);
        await FlushAsync();
        if (!await StartTlsHandshakeAsync(started))
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

    private CancellationTokenSource? _handshakeCts; // set while a TLS handshake runs: its deadline or an interruption cancels it

    private void CancelHandshake()
    {
        try
        {
            Volatile.Read(ref _handshakeCts)?.Cancel();
        }
        catch (Exception e) when (e is ObjectDisposedException or AggregateException)
        {
            // The handshake ended meanwhile, or a callback of its cancellation failed: it ends either way.
        }
    }

    /// <summary>
    /// Switches the connection to TLS; false (logged) when the handshake fails. The whole handshake
    /// has Limits.HandshakeTimeout, and a handshake that stalls counts as idle from its start, so a
    /// listener at its cap may shed it (there is no reply to send in the middle of a handshake).
    /// </summary>
    /// <param name="started">When the handshake's time began: the connect on port 465, the STARTTLS command otherwise.</param>
    private async Task<bool> StartTlsHandshakeAsync(DateTimeOffset started)
    {
        // The plaintext pipes are dropped: nothing buffered in them can cross into the TLS session.
        await _reader.CompleteAsync();
        await _writer.CompleteAsync();
        var tls = new SslStream(_network, leaveInnerStreamOpen: true);
        using var cts = new CancellationTokenSource();
        Volatile.Write(ref _handshakeCts, cts);
        Volatile.Write(ref _idleSince, started.UtcTicks);
        _timeouts.ArmUntil(Deadline.Handshake, started + Options.Limits.HandshakeTimeout);
        try
        {
            if (_timeouts.Interrupted)
            {
                cts.Cancel();
            }
            await tls.AuthenticateAsServerAsync(_ctx.Tls, cts.Token);
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException or OperationCanceledException or ObjectDisposedException)
        {
            var why = _timeouts.Expired switch
            {
                Deadline.Handshake => $"no handshake within Limits.HandshakeTimeout ({Options.Limits.HandshakeTimeout})",
                Deadline.Lifetime => "session lifetime reached during the handshake",
                _ when _timeouts.Interrupted => ClosingReason,
                _ => e.Message,
            };
            Log.TlsFailed(_ctx.Logger, _id, Ip, why);
            await tls.DisposeAsync();
            _closeReason = _timeouts.Interrupted && _timeouts.Expired == Deadline.None ? ClosingReason : "tls handshake failed";
            return false;
        }
        finally
        {
            _timeouts.Disarm();
            Volatile.Write(ref _handshakeCts, null);
            Volatile.Write(ref _idleSince, 0);
        }
        _tls = tls;
        (_reader, _writer) = CreatePipes(tls);
        _needMoreInput = false;
        Log.Tls(_ctx.Logger, _id, Ip, TlsNames.Version(tls.SslProtocol), tls.NegotiatedCipherSuite.ToString());
        return true;
    }
}
