using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Protocol.Session;
using Postern.Server.Configuration;
using Postern.Server.Limits;
using Postern.Server.Logging;

namespace Postern.Server.Smtp;

/// <summary>
/// DNS block and allow lists at connect, on the mx role, for clients outside Relay.TrustedNetworks.
/// The lookup starts before the greeting pause, so the two waits overlap; a client whose score
/// reaches Dnsbl.Threshold is greeted with <c>554 5.7.1 ... listed at ZONE</c> instead of 220. After
/// that the session waits for QUIT and answers anything else 503, as RFC 5321 §3.1 requires of a
/// server that refuses at connect; the wait is bounded by Limits.CommandTimeout and Limits.MaxErrors.
/// </summary>
public sealed partial class SmtpSession
{
    /// <summary>Starts the lookup for this client; null when no list applies (no lists, not mx, trusted).</summary>
    private Task<DnsblVerdict>? StartDnsblCheck() =>
        _listener.Role == ListenerRole.Mx && Options.Dnsbl.Lists.Count > 0 && !_config.IsTrusted(RemoteIp)
            ? _config.Dnsbl.CheckAsync(RemoteIp)
            : null;

    /// <summary>Waits for the verdict (at most Dnsbl.Timeout); when it refuses, says so and waits for QUIT. True when refused.</summary>
    private async Task<bool> RefusedByDnsblAsync(Task<DnsblVerdict>? check)
    {
        if (check is null)
        {
            return false;
        }
        var verdict = await check;
        if (!verdict.Refused)
        {
            if (verdict.Listed.Count > 0 || verdict.Allowed.Count > 0)
            {
                // On some list but greeted all the same: the log says why (below the threshold, or allow-listed).
                Log.DnsblPassed(_ctx.Logger, _id, Ip, verdict.Score, verdict.Threshold, verdict.Describe());
            }
            return false;
        }
        Refuse("CONNECT", Reply.ListedAtDnsbl(Ip, verdict.ListedZones), RefusalReason.Dnsbl, verdict.Describe());
        _closeReason = "dnsbl";
        await WaitForQuitAsync();
        return true;
    }

    /// <summary>RFC 5321 §3.1: after a 554 greeting, wait for QUIT and answer any other command 503.</summary>
    private async Task WaitForQuitAsync()
    {
        while (true)
        {
            var step = await ReadCommandAsync();
            if (step is null)
            {
                break;
            }
            _commands++;
            if (step is EngineStep.Execute { Command.Verb: Verb.Quit })
            {
                Send(Reply.Bye);
                break;
            }
            if (step is EngineStep.Refuse { Close: true } closing)
            {
                RefuseForEngine(closing);
                break;
            }
            var verb = step is EngineStep.Execute e ? e.Command.Verb : ((EngineStep.Refuse)step).Verb;
            Refuse(verb.ToString(), Reply.RefusedAtConnect, RefusalReason.BadSequence);
            if (step is EngineStep.Execute { Command: BdatCommand })
            {
                // A chunk the table let through (it cannot be, before HELO; kept as a guard): stop rather than read its octets as commands.
                break;
            }
            if (_errors >= Options.Limits.MaxErrors)
            {
                Send(Reply.TooManyErrors);
                _closeReason = "too many errors";
                break;
            }
        }
        await FlushAsync();
    }
}
