using System.Buffers;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Smtp;

/// <summary>
/// Connection triage on the mx role, after Postfix's postscreen: spam bots are impatient and
/// careless, real mail servers are neither. A client that is not trusted and has not passed lately
/// is greeted only after Triage.GreetingPause; one that talks before the greeting (pregreet) is
/// refused, as is one that sends its next commands before the EHLO reply could have allowed
/// pipelining. HTTP and other non-SMTP input is refused on every role. A client that passes is
/// remembered for Triage.CacheTime, so good servers pay the pause once.
/// </summary>
public sealed partial class SmtpSession
{
    /// <summary>True while this session is still on trial (mx role, triage on, not trusted, not cached).</summary>
    private bool _onTrial;

    private bool TriageApplies => _listener.Role == ListenerRole.Mx && Options.Triage.Enabled
        && !_config.IsTrusted(RemoteIp) && !_ctx.TriageCache.HasPassed(RemoteIp);

    /// <summary>The greeting pause; false when the client talked first and was sent away.</summary>
    private async Task<bool> GreetingPauseAsync()
    {
        _onTrial = TriageApplies;
        if (!_onTrial || Options.Triage.GreetingPause <= TimeSpan.Zero)
        {
            return true;
        }
        // The pause is a deadline whose passing is the good outcome: the control cancels the read
        // (no exception, the reader stays usable) and says it was the pause.
        _timeouts.Arm(Deadline.GreetingPause, Options.Triage.GreetingPause);
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync();
                if (result.IsCanceled && result.Buffer.IsEmpty)
                {
                    _reader.AdvanceTo(result.Buffer.Start);
                    if (_timeouts.Expired == Deadline.GreetingPause)
                    {
                        return true; // quiet through the pause, as a real server is
                    }
                    if (_timeouts.Interrupted)
                    {
                        throw new OperationCanceledException();
                    }
                    continue;
                }
                if (result.Buffer.IsEmpty && !result.IsCompleted)
                {
                    _reader.AdvanceTo(result.Buffer.Start);
                    continue;
                }
                if (result.Buffer.IsEmpty)
                {
                    _closeReason = "client closed connection";
                    return false;
                }
                _timeouts.Disarm();
                var first = Prefix(result.Buffer);
                _reader.AdvanceTo(result.Buffer.End);
                var http = Protocol.Session.SmtpEngine.LooksLikeHttp(first);
                Refuse("CONNECT", http ? Reply.NonSmtpInput : Reply.Pregreet, http ? RefusalReason.NonSmtp : RefusalReason.Pregreet, http ? "non-SMTP input before the greeting" : $"talked before the greeting: {Printable(first)}");
                _closeReason = http ? "non-SMTP input" : "pregreet";
                await FlushAsync();
                return false;
            }
        }
        finally
        {
            _timeouts.Disarm();
        }
    }

    /// <summary>At HELO/EHLO: refuses a client on trial that already sent more commands; otherwise it passes.</summary>
    private bool PipelinedTooEarly()
    {
        if (!_onTrial)
        {
            return false;
        }
        if (_reader.TryRead(out var waiting))
        {
            var early = !waiting.Buffer.IsEmpty;
            _reader.AdvanceTo(waiting.Buffer.Start);
            if (early)
            {
                Refuse("EHLO", Reply.EarlyPipelining, RefusalReason.EarlyPipelining, "commands sent before the EHLO reply");
                _closing = true;
                _closeReason = "early pipelining";
                return true;
            }
        }
        _onTrial = false;
        _ctx.TriageCache.Pass(RemoteIp, Options.Triage.CacheTime);
        return false;
    }

    private static byte[] Prefix(ReadOnlySequence<byte> buffer) => buffer.Slice(0, Math.Min(buffer.Length, 64)).ToArray();

    private static string Printable(byte[] bytes) => Printable(System.Text.Encoding.ASCII.GetString(bytes), bytes.Length);

    /// <summary>Text from outside made safe for a reply or a log: printable ASCII only, at most <paramref name="max"/> characters.</summary>
    private static string Printable(string text, int max) =>
        new(text.Take(max).Select(c => c is >= ' ' and < '\x7f' ? c : '.').ToArray());
}
