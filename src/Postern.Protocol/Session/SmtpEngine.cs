using System.Buffers;
using Postern.Protocol.Commands;
using Postern.Protocol.Parsing;
using Postern.Protocol.Replies;

namespace Postern.Protocol.Session;

/// <summary>Why the engine refused input by itself (the driver maps it to its log vocabulary).</summary>
public enum EngineRefusal
{
    /// <summary>The table refused the verb in this state, or before TLS (the reply says which).</summary>
    Table,
    /// <summary>A verb that is not SMTP.</summary>
    UnknownCommand,
    /// <summary>A known verb with bad arguments (the parser's reply).</summary>
    Syntax,
    /// <summary>A command line over RFC 5321 §4.5.3.1.4's 512 octets; the rest of it is skipped.</summary>
    LineTooLong,
    /// <summary>A bare CR or LF in a command line: the session closes (SPEC §5).</summary>
    BareLineEnding,
    /// <summary>An HTTP request line as the first command: the session closes.</summary>
    NonSmtp,
    /// <summary>More junk commands than the limit: the session closes.</summary>
    JunkCommands,
}

/// <summary>What <see cref="SmtpEngine.Next"/> found in the input.</summary>
public abstract record EngineStep
{
    /// <summary>No whole command is buffered (or a chunk being dropped still has octets to come): read more.</summary>
    public sealed record NeedMore : EngineStep
    {
        public static readonly NeedMore Instance = new();
    }

    /// <summary>
    /// A command the table allows now: the driver does its verb's work and then calls
    /// <see cref="SmtpEngine.Succeeded"/> (or leaves the state as it is). <paramref name="MoreBuffered"/>:
    /// input already follows a command that must end a pipelined group (RFC 2920 §3.1).
    /// </summary>
    public sealed record Execute(SmtpCommand Command, bool MoreBuffered) : EngineStep;

    /// <summary>The engine refused by itself: send <paramref name="Reply"/>; when <paramref name="Close"/>, close after it.</summary>
    public sealed record Refuse(Verb Verb, SmtpReply Reply, EngineRefusal Why, bool Close) : EngineStep;
}

/// <summary>
/// The SMTP dialogue as a state machine with no I/O (STYLE principle 1; smtp-proto's receivers,
/// Postfix's command table): bytes go in, commands to execute and refusals come out. It owns the
/// framing of command lines (CRLF only, 512 octets, skipping the rest of a too-long line), HTTP
/// detection, the command table (sequence, TLS-first, junk), the junk-command count and the octet
/// counting of BDAT chunks, including those dropped unread. The driver (SmtpSession) owns sockets,
/// TLS, time, the spool and every policy that needs the server (relay, accounts, DNS).
/// </summary>
public sealed class SmtpEngine(string postmasterDomain, int maxJunkCommands)
{
    /// <summary>RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.</summary>
    public const int CommandLineLimit = 512;

    private static readonly string[] HttpMethods = ["GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ", "CONNECT ", "DELETE ", "PATCH "];

    private bool _skippingLongLine;
    private long _chunkLeft;      // octets of the current BDAT chunk not yet taken
    private bool _chunkDropped;   // the current chunk is read only to be dropped
    private SmtpReply? _afterDrop; // the refusal sent once the dropped chunk is read
    private int _lines;

    public SessionState State { get; private set; } = SessionState.Connected;

    /// <summary>Junk commands (and refusals) since the last accepted message.</summary>
    public int Junk { get; private set; }

    /// <summary>The domain whose postmaster RCPT TO:&lt;postmaster&gt; means; the driver sets it again when a reload changes the domains.</summary>
    public string PostmasterDomain { get; set; } = postmasterDomain;

    /// <summary>The junk-command limit (Limits.MaxJunkCommands); the driver sets it again when a reload changes it.</summary>
    public int MaxJunkCommands { get; set; } = maxJunkCommands;

    /// <summary>Over <see cref="MaxJunkCommands"/>: the driver closes with 421 4.7.0.</summary>
    public bool JunkOverLimit => Junk > MaxJunkCommands;

    /// <summary>The listener requires TLS and the session has none yet (RFC 6409 §4.3): the table's TLS-first flags apply.</summary>
    public bool TlsRequiredButMissing { get; set; }

    /// <summary>True while octets of a BDAT chunk are being read (kept or dropped): reads run under the data deadlines.</summary>
    public bool InChunk => _chunkLeft > 0;

    /// <summary>Octets of the current chunk read so far (for the minimum data rate).</summary>
    public long ChunkRead { get; private set; }

    /// <summary>
    /// Takes the next step from <paramref name="input"/>, advancing it past what was consumed. A
    /// chunk that is being dropped is consumed here, whole, before the next command is looked at,
    /// so its octets are never read as commands (RFC 3030 §2).
    /// </summary>
    public EngineStep Next(ref SequenceReader<byte> input)
    {
        if (_chunkLeft > 0)
        {
            if (!_chunkDropped)
            {
                throw new InvalidOperationException("the chunk being received must be taken with TakeChunk");
            }
            if (!DrainChunk(ref input))
            {
                return EngineStep.NeedMore.Instance;
            }
        }
        if (_afterDrop is { } refusal)
        {
            _afterDrop = null;
            return Refused(Verb.Bdat, refusal, EngineRefusal.Table, false);
        }
        if (_skippingLongLine)
        {
            _skippingLongLine = !LineReader.SkipPastLineFeed(ref input);
            if (_skippingLongLine)
            {
                return EngineStep.NeedMore.Instance;
            }
        }
        var status = LineReader.TryRead(ref input, CommandLineLimit, out var line);
        switch (status)
        {
            case LineStatus.Incomplete:
                return EngineStep.NeedMore.Instance;
            case LineStatus.TooLong:
                _skippingLongLine = true;
                return Refused(Verb.Unknown, Reply.LineTooLong, EngineRefusal.LineTooLong, false);
            case LineStatus.BareLineEnding:
                // SPEC §5: never a line end; what follows may be a smuggled command, so nothing more is read.
                return Refused(Verb.Unknown, Reply.BareLineEndingInCommand, EngineRefusal.BareLineEnding, true);
        }
        var first = _lines++ == 0;
        if (first && LooksLikeHttp(line.IsSingleSegment ? line.FirstSpan : line.ToArray()))
        {
            return Refused(Verb.Unknown, Reply.NonSmtpInput, EngineRefusal.NonSmtp, true);
        }
        var command = CommandParser.Parse(line, PostmasterDomain);
        return Decide(command, ref input);
    }

    private EngineStep Decide(SmtpCommand command, ref SequenceReader<byte> input)
    {
        var verb = command.Verb;
        if (CommandTable.IsJunk(verb))
        {
            if (Junk >= MaxJunkCommands)
            {
                Junk++;
                return new EngineStep.Refuse(verb, Reply.TooManyJunkCommands, EngineRefusal.JunkCommands, true);
            }
        }
        if (verb == Verb.Unknown)
        {
            return Refused(verb, command is InvalidCommand bad ? bad.Reply : Reply.UnknownCommand, EngineRefusal.UnknownCommand, false);
        }
        // Sequence first (even for a malformed command, RFC 5321 §4.1.4 prefers 503 over 501),
        // except BDAT, whose octets must be read whatever is replied.
        var refusal = CommandTable.Check(verb, State, TlsRequiredButMissing);
        if (refusal is not null)
        {
            if (command is BdatCommand bdat && bdat.Size > 0)
            {
                DropChunk(bdat.Size);
                _afterDrop = refusal;
                return DrainChunk(ref input) ? Next(ref input) : EngineStep.NeedMore.Instance;
            }
            return Refused(verb, refusal, EngineRefusal.Table, false);
        }
        if (command is InvalidCommand invalid)
        {
            return Refused(verb, invalid.Reply, EngineRefusal.Syntax, false);
        }
        if (command is BdatCommand chunk)
        {
            _chunkLeft = chunk.Size;
            _chunkDropped = false;
            ChunkRead = 0;
        }
        Count(verb, refused: false);
        return new EngineStep.Execute(command, input.Remaining > 0 && CommandTable.For(verb).LastInGroup);
    }

    /// <summary>A refusal counts as junk; crossing the limit with it is the driver's to answer (see <see cref="JunkOverLimit"/>).</summary>
    private EngineStep.Refuse Refused(Verb verb, SmtpReply reply, EngineRefusal why, bool close)
    {
        Count(verb, refused: true);
        return new EngineStep.Refuse(verb, reply, why, close);
    }

    private void Count(Verb verb, bool refused)
    {
        if (refused || CommandTable.IsJunk(verb))
        {
            Junk++;
        }
    }

    /// <summary>A refusal the driver decided (relay, AUTH, a rate...) or a recipient given again: junk too.</summary>
    public void CountJunk() => Junk++;

    /// <summary>A message was accepted: the client is doing real work (Postfix resets its junk count likewise).</summary>
    public void MessageAccepted() => Junk = 0;

    /// <summary>The executed command succeeded: the state moves as the table says (BDAT LAST ends the transaction).</summary>
    public void Succeeded(SmtpCommand command)
    {
        State = command is BdatCommand { Last: true } ? SessionState.Ready : CommandTable.For(command.Verb).Next ?? State;
    }

    /// <summary>The transaction ended without a message (RSET, HELO, a refused message): back to Ready.</summary>
    public void ResetTransaction()
    {
        if (State is SessionState.Mail or SessionState.Rcpt or SessionState.Bdat)
        {
            State = SessionState.Ready;
        }
    }

    /// <summary>After the TLS handshake the session starts over (RFC 3207 §4.2); leftover framing is dropped with the plaintext.</summary>
    public void Restart()
    {
        State = SessionState.Connected;
        _skippingLongLine = false;
    }

    /// <summary>The rest of the current chunk (an executed BDAT the driver refuses) is read and dropped by <see cref="Next"/>.</summary>
    public void DropChunk(long size)
    {
        _chunkLeft = size;
        _chunkDropped = true;
        ChunkRead = 0;
    }

    /// <summary>Drops what is left of the chunk being received (the driver will not keep it).</summary>
    public void DropRestOfChunk() => _chunkDropped = _chunkLeft > 0;

    /// <summary>Consumes octets of a chunk being dropped; true once it is all read.</summary>
    public bool DrainChunk(ref SequenceReader<byte> input)
    {
        var take = Math.Min(_chunkLeft, input.Remaining);
        input.Advance(take);
        _chunkLeft -= take;
        ChunkRead += take;
        if (_chunkLeft > 0)
        {
            return false;
        }
        _chunkDropped = false;
        return true;
    }

    /// <summary>The driver read a too-long line itself (an AUTH response): the rest of it, to the next LF, is skipped.</summary>
    public void SkipRestOfLine() => _skippingLongLine = true;

    /// <summary>
    /// Takes octets of the chunk being received (RFC 3030: counted, never terminated), at most what
    /// is left of it. True when the chunk is complete.
    /// </summary>
    public bool TakeChunk(ref SequenceReader<byte> input, out ReadOnlySequence<byte> piece)
    {
        var take = Math.Min(_chunkLeft, input.Remaining);
        piece = input.UnreadSequence.Slice(0, take);
        input.Advance(take);
        _chunkLeft -= take;
        ChunkRead += take;
        return _chunkLeft == 0;
    }

    /// <summary>An HTTP request line (a browser, a proxy probe, a scanner) instead of SMTP.</summary>
    public static bool LooksLikeHttp(ReadOnlySpan<byte> line)
    {
        foreach (var m in HttpMethods)
        {
            if (line.Length >= m.Length && System.Text.Ascii.EqualsIgnoreCase(line[..m.Length], m))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The EHLO reply (RFC 5321 §4.1.1.1) with the extensions in force: STARTTLS only where TLS can
    /// still start, AUTH only over TLS and not once authenticated (SPEC §4, RFC 4954 §4).
    /// </summary>
    public static SmtpReply EhloReply(string hostname, string clientDomain, string clientIp, long maxMessageSize, bool offerStartTls, bool offerAuth)
    {
        var lines = new List<string>
        {
            $"{hostname} Hello {clientDomain} [{clientIp}]",
            "PIPELINING",
            $"SIZE {maxMessageSize}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        };
        if (offerStartTls)
        {
            lines.Add("STARTTLS");
        }
        if (offerAuth)
        {
            lines.Add("AUTH PLAIN LOGIN");
        }
        lines.Add("CHUNKING");
        lines.Add("DSN");
        return new SmtpReply(250, null, string.Join('\n', lines));
    }

    /// <summary>The greeting (RFC 5321 §4.3.1): no software version in it (STYLE principle 5).</summary>
    public static SmtpReply Greeting(string hostname) => new(220, null, $"{hostname} ESMTP Postern");
}
