using System.Net;
using Postern.Server.Configuration;

namespace Postern.Server.Filters.Milter;

/// <summary>
/// The configured milters of one SMTP session, asked in order at each stage as Postfix's
/// smtpd_milters are: the first refusal (reject, tempfail, discard) ends the stage and the later
/// milters are not asked; an accept only takes that milter out (for the session or the message);
/// an unavailable milter counts as its <see cref="MilterOptions.DefaultAction"/>: tempfail refuses
/// with 451 4.7.1, accept goes on without it. Every milter sees the message as it arrived; the
/// changes of all of them are returned in milter order.
/// </summary>
public sealed class MilterChain : IAsyncDisposable
{
    /// <summary>What a session gets when a milter with the default action tempfail is down (Postfix's words).</summary>
    public static readonly Postern.Protocol.Replies.SmtpReply Unavailable = new(451, "4.7.1", "Service unavailable - try again later");

    private readonly IReadOnlyList<MilterSession> _sessions;

    public MilterChain(IReadOnlyList<MilterSession> sessions) => _sessions = sessions;

    /// <summary>The chain for one SMTP session: every milter on mx listeners, those with <c>Submission</c> on submission ones.</summary>
    public static MilterChain Open(IEnumerable<Milter> milters, string session, bool submission) =>
        new(milters.Where(m => !submission || m.Options.Submission).Select(m => m.OpenSession(session)).ToList());

    /// <summary>Whether there is any milter to ask.</summary>
    public bool IsEmpty => _sessions.Count == 0;

    /// <summary>Sets a macro for every milter (see <see cref="MilterMacros"/>).</summary>
    public void SetMacro(string name, string? value)
    {
        foreach (var s in _sessions)
        {
            s.Macros[name] = value;
        }
    }

    public Task<MilterVerdict> ConnectAsync(string? clientName, IPEndPoint? client, CancellationToken cancellationToken = default) =>
        EachAsync(s => s.ConnectAsync(clientName, client, cancellationToken));

    public Task<MilterVerdict> HeloAsync(string helo, CancellationToken cancellationToken = default) =>
        EachAsync(s => s.HeloAsync(helo, cancellationToken));

    public Task<MilterVerdict> MailAsync(string reversePath, IReadOnlyList<string> parameters, CancellationToken cancellationToken = default) =>
        EachAsync(s => s.MailAsync(reversePath, parameters, cancellationToken));

    public Task<MilterVerdict> RcptAsync(string forwardPath, IReadOnlyList<string> parameters, CancellationToken cancellationToken = default) =>
        EachAsync(s => s.RcptAsync(forwardPath, parameters, cancellationToken));

    public Task<MilterVerdict> DataCommandAsync(CancellationToken cancellationToken = default) =>
        EachAsync(s => s.DataCommandAsync(cancellationToken));

    /// <summary>
    /// The message, to each milter in turn: <paramref name="openBody"/> opens the body afresh for each
    /// (a spool file, not the client's stream), <paramref name="openReplacementSink"/> gives each a
    /// place for a body it replaces. The result's <see cref="MilterChainResult.ReplacementBody"/> is
    /// the last replaced body (rewound), or null.
    /// </summary>
    public async Task<MilterChainResult> DataAsync(ReadOnlyMemory<byte> headerSection, Func<Stream> openBody, Func<Stream> openReplacementSink,
        long maxReplacementBody, CancellationToken cancellationToken = default)
    {
        var changes = new List<(string Milter, MilterModification Change)>();
        Stream? replacement = null;
        foreach (var s in _sessions)
        {
            var sink = openReplacementSink();
            MilterMessageResult result;
            await using (var body = openBody())
            {
                result = await s.DataAsync(headerSection, body, sink, maxReplacementBody, cancellationToken);
            }
            var verdict = Resolve(s, result.Verdict);
            if (verdict is not null)
            {
                await sink.DisposeAsync();
                if (replacement is not null)
                {
                    await replacement.DisposeAsync();
                }
                return new MilterChainResult(verdict, s.Name, [], null);
            }
            changes.AddRange(result.Modifications.Select(m => (s.Name, m)));
            if (result.BodyReplaced)
            {
                if (replacement is not null)
                {
                    await replacement.DisposeAsync();
                }
                sink.Position = 0;
                replacement = sink;
            }
            else
            {
                await sink.DisposeAsync();
            }
        }
        return new MilterChainResult(MilterVerdict.Continue, null, changes, replacement);
    }

    /// <summary>Tells every milter the transaction ended without an end of message.</summary>
    public async Task AbortAsync(CancellationToken cancellationToken = default)
    {
        foreach (var s in _sessions)
        {
            await s.AbortAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var s in _sessions)
        {
            await s.DisposeAsync();
        }
    }

    private async Task<MilterVerdict> EachAsync(Func<MilterSession, Task<MilterVerdict>> stage)
    {
        foreach (var s in _sessions)
        {
            if (Resolve(s, await stage(s)) is { } refusal)
            {
                return refusal;
            }
        }
        return MilterVerdict.Continue;
    }

    /// <summary>The verdict that ends the stage for the chain, or null to ask the next milter.</summary>
    private static MilterVerdict? Resolve(MilterSession s, MilterVerdict verdict) => verdict.Kind switch
    {
        MilterVerdictKind.Reject or MilterVerdictKind.TempFail or MilterVerdictKind.Discard => verdict,
        MilterVerdictKind.Unavailable when s.DefaultAction == MilterDefaultAction.Tempfail =>
            new MilterVerdict(MilterVerdictKind.TempFail, Unavailable, $"milter {s.Name} unavailable: {verdict.Detail}"),
        _ => null,
    };
}

/// <summary>
/// The chain's outcome for a message: the verdict (Continue, or the refusal of <see cref="Milter"/>),
/// every change asked for with the milter that asked, and the body that replaces the message's, if any.
/// </summary>
public sealed record MilterChainResult(MilterVerdict Verdict, string? Milter, IReadOnlyList<(string Milter, MilterModification Change)> Modifications, Stream? ReplacementBody);
