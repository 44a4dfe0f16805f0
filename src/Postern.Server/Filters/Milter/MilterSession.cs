using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Filters.Milter;

/// <summary>
/// The milter client for one SMTP session (the MTA side of the Sendmail milter protocol, version 6,
/// as Postfix's milter8 speaks it). The session calls it at each stage, in order:
/// <see cref="ConnectAsync"/>, <see cref="HeloAsync"/>, then per transaction <see cref="MailAsync"/>,
/// <see cref="RcptAsync"/> (each recipient), optionally <see cref="DataCommandAsync"/> at DATA,
/// <see cref="DataAsync"/> once the message is in, or <see cref="AbortAsync"/> when the transaction
/// ends without one (RSET, a refusal); <see cref="DisposeAsync"/> at the end says QUIT.
/// Each call returns a <see cref="MilterVerdict"/>; none throws for anything the milter does: a
/// milter down, slow or broken gives <see cref="MilterVerdictKind.Unavailable"/> (then the caller
/// applies <see cref="DefaultAction"/>), every wait is bounded by the milter's timeouts on the
/// injected <see cref="TimeProvider"/>. Not thread-safe: one session, one caller.
/// </summary>
public sealed class MilterSession : IAsyncDisposable
{
    private enum State
    {
        /// <summary>Not connected yet.</summary>
        Closed,
        /// <summary>Connected, between transactions.</summary>
        Envelope,
        /// <summary>In a transaction (after MAIL).</summary>
        Message,
        /// <summary>The milter accepted this message: it is not asked again until the next.</summary>
        AcceptedMessage,
        /// <summary>The milter accepted the session, or refused it at connect: not asked again.</summary>
        Done,
        /// <summary>Unavailable: the connection is closed, every stage returns the same verdict.</summary>
        Failed,
    }

    private readonly Milter _milter;
    private readonly string _session;
    private readonly MilterFrame _frame = new();
    private readonly byte[] _lengthAndCode = new byte[5];
    private Socket? _socket;
    private NetworkStream? _stream;
    private State _state = State.Closed;
    private MilterVerdict _sticky = MilterVerdict.Continue;
    private bool _dataSent;
    private IReadOnlyDictionary<MilterStage, string[]> _macroLists = MilterMacros.Defaults;

    internal MilterSession(Milter milter, string session)
    {
        _milter = milter;
        _session = session;
    }

    /// <summary>The milter's name, as configured.</summary>
    public string Name => _milter.Name;

    /// <summary>What the caller does with <see cref="MilterVerdictKind.Unavailable"/>.</summary>
    public MilterDefaultAction DefaultAction => _milter.Options.DefaultAction;

    /// <summary>The session's macro values; set them before the stage that sends them (see <see cref="MilterMacros"/>).</summary>
    public MilterMacros Macros { get; } = new();

    /// <summary>The protocol version the milter answered with (2-6), 0 before negotiation.</summary>
    public uint Version { get; private set; }

    /// <summary>The actions the milter asked for in negotiation.</summary>
    public MilterActions Actions { get; private set; }

    /// <summary>The protocol steps the milter chose in negotiation.</summary>
    public MilterSteps Steps { get; private set; }

    /// <summary>How many SMFIR_PROGRESS reports came in this session (for diagnostics and the tests of the timeout).</summary>
    internal int ProgressReports { get; private set; }

    private MilterOptions Options => _milter.Options;

    /// <summary>
    /// Connects (within ConnectTimeout), negotiates (SMFIC_OPTNEG) and reports the client
    /// (SMFIC_CONNECT). <paramref name="clientName"/> is its verified reverse name, or null, and
    /// then the milter is told "[address]" as Sendmail and Postfix do. Sets the macros
    /// {client_addr}, {client_port}, {client_name}, {client_ptr} and _.
    /// </summary>
    public async Task<MilterVerdict> ConnectAsync(string? clientName, IPEndPoint? client, CancellationToken cancellationToken = default)
    {
        if (_state != State.Closed)
        {
            throw new InvalidOperationException("ConnectAsync is called once per session");
        }
        var address = client?.Address is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : client?.Address;
        var shownName = clientName ?? (address is null ? "unknown" : $"[{address}]");
        Macros["client_addr"] = address?.ToString();
        Macros["client_port"] = client?.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Macros["client_name"] = shownName;
        Macros["client_ptr"] = clientName;
        Macros["_"] = address is null ? shownName : $"{clientName ?? "unknown"} [{address}]";
        try
        {
            await OpenAsync(cancellationToken);
        }
        catch (Exception e) when (IsMilterFailure(e, cancellationToken))
        {
            return Fail(Describe(e, "connect", Options.ConnectTimeout));
        }
        _state = State.Envelope;
        var verdict = await StageAsync("connect", MilterStage.Connect, MilterCommand.Connect, MilterSteps.NoConnect, MilterSteps.NoReplyConnect, f =>
        {
            f.CString(shownName);
            switch (address?.AddressFamily)
            {
                case AddressFamily.InterNetwork:
                    f.Byte((byte)'4').UInt16((ushort)client!.Port).CString(address.ToString());
                    break;
                case AddressFamily.InterNetworkV6:
                    f.Byte((byte)'6').UInt16((ushort)client!.Port).CString(address.ToString());
                    break;
                default:
                    f.Byte((byte)'U');
                    break;
            }
        }, Options.CommandTimeout, cancellationToken);
        return SessionLevel(verdict, refusalSticks: true);
    }

    /// <summary>HELO or EHLO (SMFIC_HELO) with the name the client gave.</summary>
    public async Task<MilterVerdict> HeloAsync(string helo, CancellationToken cancellationToken = default)
    {
        if (Skipped(messageStage: false) is { } skipped)
        {
            return skipped;
        }
        if (_state is State.Message or State.AcceptedMessage)
        {
            // RFC 5321 §4.1.4: EHLO resets a transaction in progress; so does the milter's.
            await AbortAsync(cancellationToken);
        }
        Macros["s"] = helo;
        var verdict = await StageAsync("helo", MilterStage.Helo, MilterCommand.Helo, MilterSteps.NoHelo, MilterSteps.NoReplyHelo,
            f => f.CString(helo), Options.CommandTimeout, cancellationToken);
        return SessionLevel(verdict, refusalSticks: false);
    }

    /// <summary>
    /// MAIL FROM (SMFIC_MAIL): the reverse path without angle brackets ("" for the null sender) and
    /// the ESMTP parameters as written (SIZE=1000, BODY=8BITMIME). A transaction left open is
    /// aborted first. Sets {mail_addr}.
    /// </summary>
    public async Task<MilterVerdict> MailAsync(string reversePath, IReadOnlyList<string> parameters, CancellationToken cancellationToken = default)
    {
        if (Skipped(messageStage: false) is { } skipped)
        {
            return skipped;
        }
        if (_state is State.Message or State.AcceptedMessage)
        {
            await AbortAsync(cancellationToken);
            if (_state == State.Failed)
            {
                return _sticky;
            }
        }
        _state = State.Message;
        _dataSent = false;
        Macros["mail_addr"] = reversePath;
        Macros["mail_mailer"] = "smtp";
        var verdict = await StageAsync("mail", MilterStage.Mail, MilterCommand.Mail, MilterSteps.NoMail, MilterSteps.NoReplyMail, PathAndParameters(reversePath, parameters), Options.CommandTimeout, cancellationToken);
        return MessageLevel(verdict);
    }

    /// <summary>MAIL and RCPT frames alike: the path in angle brackets, then each ESMTP parameter, each NUL-terminated.</summary>
    private static Action<MilterFrame> PathAndParameters(string path, IReadOnlyList<string> parameters) => f =>
    {
        f.CString($"<{path}>");
        foreach (var p in parameters)
        {
            f.CString(p);
        }
    };

    /// <summary>
    /// RCPT TO (SMFIC_RCPT): the forward path without angle brackets and its parameters. A Reject or
    /// TempFail here is for this recipient only; the transaction goes on. Sets {rcpt_addr}.
    /// </summary>
    public async Task<MilterVerdict> RcptAsync(string forwardPath, IReadOnlyList<string> parameters, CancellationToken cancellationToken = default)
    {
        if (Skipped(messageStage: true) is { } skipped)
        {
            return skipped;
        }
        RequireTransaction();
        Macros["rcpt_addr"] = forwardPath;
        Macros["rcpt_mailer"] = "smtp";
        var verdict = await StageAsync("rcpt", MilterStage.Rcpt, MilterCommand.Rcpt, MilterSteps.NoRcpt, MilterSteps.NoReplyRcpt, PathAndParameters(forwardPath, parameters), Options.CommandTimeout, cancellationToken);
        return MessageLevel(verdict);
    }

    /// <summary>
    /// The DATA command (SMFIC_DATA), before the 354, so a milter can refuse there. Optional:
    /// <see cref="DataAsync"/> sends it first when it was not. Milters older than version 4 never get it.
    /// </summary>
    public async Task<MilterVerdict> DataCommandAsync(CancellationToken cancellationToken = default)
    {
        if (Skipped(messageStage: true) is { } skipped)
        {
            return skipped;
        }
        RequireTransaction();
        _dataSent = true;
        var verdict = await StageAsync("data", MilterStage.Data, MilterCommand.Data, MilterSteps.NoData, MilterSteps.NoReplyData,
            _ => { }, Options.CommandTimeout, cancellationToken);
        return MessageLevel(verdict);
    }

    /// <summary>
    /// The message: each header field of <paramref name="headerSection"/> (SMFIC_HEADER), the end of
    /// headers (SMFIC_EOH), the body read from <paramref name="body"/> in chunks of at most 65,535
    /// octets (SMFIC_BODY, never all of it in memory; CRLF line endings, dot-unstuffed), then the end
    /// of message (SMFIC_BODYEOB), whose answer carries the milter's changes. A body the milter
    /// replaces (SMFIR_REPLBODY) is written to <paramref name="replacementBody"/>, at most
    /// <paramref name="maxReplacementBody"/> octets (more makes the milter unavailable); without a sink,
    /// a milter that asks to replace the body is unavailable too. The body stream may be left unread
    /// to its end when the milter decides early (accept, reject, skip).
    /// </summary>
    public async Task<MilterMessageResult> DataAsync(ReadOnlyMemory<byte> headerSection, Stream body, Stream? replacementBody = null,
        long maxReplacementBody = 50L * 1024 * 1024, CancellationToken cancellationToken = default)
    {
        if (Skipped(messageStage: true) is { } skipped)
        {
            return new MilterMessageResult(skipped, []);
        }
        RequireTransaction();
        if (!_dataSent)
        {
            var data = await DataCommandAsync(cancellationToken);
            if (data.Kind != MilterVerdictKind.Continue)
            {
                return new MilterMessageResult(data, []);
            }
        }
        var leadingSpace = (Steps & MilterSteps.HeaderLeadingSpace) != 0;
        if ((Steps & MilterSteps.NoHeaders) == 0)
        {
            foreach (var field in HeaderFields.Split(headerSection, leadingSpace))
            {
                var header = await StageAsync("header", null, 0, MilterSteps.None, MilterSteps.NoReplyHeader,
                    f => f.CString(field.Name.Span).CString(field.Value), Options.ContentTimeout, cancellationToken);
                if (header.Kind != MilterVerdictKind.Continue)
                {
                    return await EndedEarly(header, cancellationToken);
                }
            }
        }
        var eoh = await StageAsync("eoh", MilterStage.EndOfHeaders, MilterCommand.EndOfHeaders, MilterSteps.NoEndOfHeaders,
            MilterSteps.NoReplyEndOfHeaders, _ => { }, Options.ContentTimeout, cancellationToken);
        if (eoh.Kind != MilterVerdictKind.Continue)
        {
            return await EndedEarly(eoh, cancellationToken);
        }
        if ((Steps & MilterSteps.NoBody) == 0)
        {
            var chunk = new byte[MilterProtocol.BodyChunk];
            while (true)
            {
                // The caller's stream: its exceptions are its own, not the milter's.
                var n = await body.ReadAtLeastAsync(chunk, chunk.Length, throwOnEndOfStream: false, cancellationToken);
                if (n == 0)
                {
                    break;
                }
                var part = chunk.AsMemory(0, n);
                var verdict = await StageAsync("body", null, 0, MilterSteps.None, MilterSteps.NoReplyBody,
                    f => f.Bytes(part.Span), Options.ContentTimeout, cancellationToken, allowSkip: true);
                if (verdict == SkipBody)
                {
                    break;
                }
                if (verdict.Kind != MilterVerdictKind.Continue)
                {
                    return await EndedEarly(verdict, cancellationToken);
                }
                if (n < chunk.Length)
                {
                    break;
                }
            }
        }
        return await EndOfMessageAsync(replacementBody, maxReplacementBody, cancellationToken);
    }

    /// <summary>
    /// The transaction ended without an end of message (RSET, a refusal, the client gone):
    /// SMFIC_ABORT, no reply. Harmless when there is no transaction.
    /// </summary>
    public async Task AbortAsync(CancellationToken cancellationToken = default)
    {
        if (_state is not (State.Message or State.AcceptedMessage) || _stream is null)
        {
            return;
        }
        _state = State.Envelope;
        _frame.Clear();
        _frame.Begin(MilterCommand.Abort).End();
        try
        {
            await WriteAsync(Options.CommandTimeout, cancellationToken);
        }
        catch (Exception e) when (IsMilterFailure(e, cancellationToken))
        {
            Fail(Describe(e, "abort", Options.CommandTimeout));
        }
    }

    /// <summary>Says QUIT (SMFIC_QUIT, no reply) and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stream is not null && _state != State.Failed)
        {
            _frame.Clear();
            _frame.Begin(MilterCommand.Quit).End();
            try
            {
                await WriteAsync(TimeSpan.FromSeconds(Math.Min(5, Options.CommandTimeout.TotalSeconds)), CancellationToken.None);
            }
            catch (Exception e) when (IsMilterFailure(e, CancellationToken.None))
            {
                // Going anyway.
            }
        }
        Close();
    }

    /// <summary>A verdict for <see cref="DataAsync"/>'s body loop only: SMFIR_SKIP, stop sending the body.</summary>
    private static readonly MilterVerdict SkipBody = new(MilterVerdictKind.Continue, null, "skip");

    private async Task OpenAsync(CancellationToken cancellationToken)
    {
        var socket = MilterAddress.SocketFor(_milter.EndPoint);
        try
        {
            using (var deadline = new CancellationTokenSource(Options.ConnectTimeout, _milter.Time))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token))
            {
                await socket.ConnectAsync(_milter.EndPoint, linked.Token);
            }
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        // SMFIC_OPTNEG: the version, every action, every step Postern can honour (mfdef.h).
        _frame.Clear();
        _frame.Begin(MilterCommand.OptionNegotiation).UInt32(MilterProtocol.Version).UInt32((uint)MilterActions.All).UInt32((uint)MilterSteps.Offered).End();
        using (var deadline = new CancellationTokenSource(Options.CommandTimeout, _milter.Time))
        using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token))
        {
            await _stream.WriteAsync(_frame.Written, linked.Token);
            var (code, data) = await ReadFrameAsync(linked.Token);
            if (MilterReply.Parse(code, data) is not MilterReply.Negotiated n)
            {
                throw new MilterProtocolException($"'{MilterReply.Printable(code)}' in answer to option negotiation");
            }
            Accept(n);
        }
        _milter.ReportUp();
    }

    private void Accept(MilterReply.Negotiated n)
    {
        // Postfix's milter8_connect: a newer version than offered, or actions not offered, end it.
        if (n.Version is < 2 or > MilterProtocol.Version)
        {
            throw new MilterProtocolException($"protocol version {n.Version}, Postern speaks 2 to {MilterProtocol.Version}");
        }
        if ((n.Actions & ~MilterActions.All) != 0)
        {
            throw new MilterProtocolException($"actions 0x{(uint)n.Actions:X} asked for, 0x{(uint)MilterActions.All:X} offered");
        }
        var steps = n.Steps & MilterSteps.Offered;
        // Events outside the milter's own version are never sent (Postfix's MILTER8_V*_PROTO_MASK):
        // DATA came with version 4, unknown commands with 3.
        if (n.Version < 4)
        {
            steps |= MilterSteps.NoData;
        }
        if (n.Version < 6)
        {
            steps &= MilterSteps.Version2 | MilterSteps.NoUnknown | MilterSteps.NoData | MilterSteps.NoReplyHeader;
        }
        Version = n.Version;
        Actions = n.Actions;
        Steps = steps;
        if (n.Macros.Count > 0)
        {
            // Its own lists replace the defaults stage by stage; a stage it does not name gets none (Postfix).
            var lists = new Dictionary<MilterStage, string[]>();
            foreach (var stage in Enum.GetValues<MilterStage>())
            {
                lists[stage] = n.Macros.TryGetValue(stage, out var names) ? names : [];
            }
            _macroLists = lists;
        }
    }

    /// <summary>
    /// Sends one command (with the macros of <paramref name="macroStage"/> before it) unless the
    /// milter left the stage out, then reads its answer unless it chose not to give one.
    /// </summary>
    private async Task<MilterVerdict> StageAsync(string stage, MilterStage? macroStage, byte command, MilterSteps leftOut, MilterSteps noReply,
        Action<MilterFrame> build, TimeSpan timeout, CancellationToken cancellationToken, bool allowSkip = false)
    {
        if ((Steps & leftOut) != 0)
        {
            return MilterVerdict.Continue;
        }
        _frame.Clear();
        if (macroStage is { } ms)
        {
            AppendMacros(ms, command);
        }
        var code = command != 0 ? command : stage switch
        {
            "header" => MilterCommand.Header,
            _ => MilterCommand.Body,
        };
        build(_frame.Begin(code));
        _frame.End();
        try
        {
            using var deadline = new CancellationTokenSource(timeout, _milter.Time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            await _stream!.WriteAsync(_frame.Written, linked.Token);
            if ((Steps & noReply) != 0)
            {
                return MilterVerdict.Continue;
            }
            var decision = await ReadDecisionAsync(deadline, timeout, linked.Token, null);
            if (decision.Code == MilterReplyCode.Skip)
            {
                // SMFIR_SKIP is only for body chunks, and only when negotiated (SMFIP_SKIP).
                return allowSkip && (Steps & MilterSteps.Skip) != 0
                    ? SkipBody
                    : Fail($"skip in answer to {stage}");
            }
            return Logged(stage, ToVerdict(decision));
        }
        catch (Exception e) when (IsMilterFailure(e, cancellationToken))
        {
            return Fail(Describe(e, stage, timeout));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Abandon();
            throw;
        }
    }

    private async Task<MilterMessageResult> EndOfMessageAsync(Stream? sink, long maxReplacementBody, CancellationToken cancellationToken)
    {
        _frame.Clear();
        AppendMacros(MilterStage.EndOfMessage, MilterCommand.EndOfBody);
        _frame.Begin(MilterCommand.EndOfBody).End();
        var changes = new EndOfMessage(sink, maxReplacementBody, Actions);
        var timeout = Options.ContentTimeout;
        try
        {
            using var deadline = new CancellationTokenSource(timeout, _milter.Time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            await _stream!.WriteAsync(_frame.Written, linked.Token);
            var decision = await ReadDecisionAsync(deadline, timeout, linked.Token, changes);
            if (decision.Code == MilterReplyCode.Skip)
            {
                return new MilterMessageResult(Fail("skip in answer to the end of message"), []);
            }
            // After the end of message libmilter starts over by itself: no abort needed.
            _state = State.Envelope;
            _dataSent = false;
            var verdict = Logged("eom", ToVerdict(decision));
            return new MilterMessageResult(verdict, changes.Finish());
        }
        catch (Exception e) when (IsMilterFailure(e, cancellationToken))
        {
            return new MilterMessageResult(Fail(Describe(e, "eom", timeout)), []);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Abandon();
            throw;
        }
    }

    /// <summary>A decision before the end of message: tell the milter the message is over (Sendmail's milter_abort after a refusal).</summary>
    private async Task<MilterMessageResult> EndedEarly(MilterVerdict verdict, CancellationToken cancellationToken)
    {
        if (verdict.Kind is MilterVerdictKind.Unavailable)
        {
            return new MilterMessageResult(verdict, []);
        }
        if (verdict.Kind != MilterVerdictKind.Accept)
        {
            await AbortAsync(cancellationToken);
        }
        return new MilterMessageResult(verdict, []);
    }

    /// <summary>Reads replies until a decision: progress restarts the clock, changes go to <paramref name="changes"/> (end of message only).</summary>
    private async Task<MilterReply.Decision> ReadDecisionAsync(CancellationTokenSource deadline, TimeSpan timeout, CancellationToken token, EndOfMessage? changes)
    {
        while (true)
        {
            var (code, data) = await ReadFrameAsync(token);
            switch (MilterReply.Parse(code, data))
            {
                case MilterReply.Decision d:
                    return d;
                case MilterReply.Progress:
                    // SMFIR_PROGRESS (smfi_progress): the milter is alive; its timeout starts again.
                    deadline.CancelAfter(timeout);
                    ProgressReports++;
                    break;
                case MilterReply.Change c when changes is not null:
                    changes.Add(c);
                    break;
                case MilterReply.BodyChunk b when changes is not null:
                    await changes.AddBodyAsync(b.Data, token);
                    break;
                default:
                    throw new MilterProtocolException($"'{MilterReply.Printable(code)}' is a change, allowed only at the end of message");
            }
        }
    }

    /// <summary>One reply frame, its length checked before anything is allocated for it.</summary>
    private async Task<(byte Code, ReadOnlyMemory<byte> Data)> ReadFrameAsync(CancellationToken token)
    {
        await _stream!.ReadExactlyAsync(_lengthAndCode.AsMemory(0, 4), token);
        var length = BinaryPrimitives.ReadUInt32BigEndian(_lengthAndCode);
        if (length < 1 || length > MilterProtocol.MaxReplyFrame)
        {
            throw new MilterProtocolException($"reply frame of {length} bytes (1 to {MilterProtocol.MaxReplyFrame} allowed)");
        }
        await _stream.ReadExactlyAsync(_lengthAndCode.AsMemory(4, 1), token);
        var data = length == 1 ? [] : new byte[length - 1];
        if (data.Length > 0)
        {
            await _stream.ReadExactlyAsync(data, token);
        }
        return (_lengthAndCode[4], data);
    }

    private async Task WriteAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(timeout, _milter.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        await _stream!.WriteAsync(_frame.Written, linked.Token);
    }

    private void AppendMacros(MilterStage stage, byte command)
    {
        if (!_macroLists.TryGetValue(stage, out var names) || names.Length == 0)
        {
            return;
        }
        var values = Macros.Select(names).ToList();
        if (values.Count == 0)
        {
            return;
        }
        // SMFIC_MACRO: the command the macros are for, then name and value pairs.
        _frame.Begin(MilterCommand.Macro).Byte(command);
        foreach (var (name, value) in values)
        {
            _frame.CString(name).CString(value);
        }
        _frame.End();
    }

    private static MilterVerdict ToVerdict(MilterReply.Decision d) => d.Code switch
    {
        MilterReplyCode.Accept => MilterVerdict.Accept,
        MilterReplyCode.Continue => MilterVerdict.Continue,
        MilterReplyCode.Discard => MilterVerdict.Discard,
        MilterReplyCode.Reject => new MilterVerdict(MilterVerdictKind.Reject, MilterVerdict.DefaultReject),
        MilterReplyCode.TempFail => new MilterVerdict(MilterVerdictKind.TempFail, MilterVerdict.DefaultTempFail),
        MilterReplyCode.ReplyCode => new MilterVerdict(d.Reply!.IsPermanent ? MilterVerdictKind.Reject : MilterVerdictKind.TempFail, d.Reply),
        _ => throw new MilterProtocolException($"unexpected decision '{MilterReply.Printable(d.Code)}'"),
    };

    private MilterVerdict Logged(string stage, MilterVerdict verdict)
    {
        if (verdict.Kind != MilterVerdictKind.Continue)
        {
            Log.MilterVerdict(_milter.Logger, _session, Name, stage, verdict.Kind.ToString().ToLowerInvariant(), verdict.Reply?.ToString());
        }
        return verdict;
    }

    /// <summary>Connect and HELO: accept means the whole session; a refusal at connect holds for every later stage.</summary>
    private MilterVerdict SessionLevel(MilterVerdict verdict, bool refusalSticks)
    {
        switch (verdict.Kind)
        {
            case MilterVerdictKind.Accept:
                _state = State.Done;
                _sticky = MilterVerdict.Accept;
                break;
            case MilterVerdictKind.Reject or MilterVerdictKind.TempFail when refusalSticks:
                _state = State.Done;
                _sticky = verdict;
                break;
            case MilterVerdictKind.Discard:
                // libmilter: discard is for message stages only; before a message it can only mean "let it be".
                return MilterVerdict.Continue;
        }
        return verdict;
    }

    /// <summary>MAIL, RCPT, DATA: accept means this message.</summary>
    private MilterVerdict MessageLevel(MilterVerdict verdict)
    {
        if (verdict.Kind == MilterVerdictKind.Accept && _state == State.Message)
        {
            _state = State.AcceptedMessage;
        }
        return verdict;
    }

    private MilterVerdict? Skipped(bool messageStage)
    {
        return _state switch
        {
            State.Closed => throw new InvalidOperationException("ConnectAsync comes first"),
            State.Failed or State.Done => _sticky,
            State.AcceptedMessage when messageStage => MilterVerdict.Accept,
            _ => null,
        };
    }

    private void RequireTransaction()
    {
        if (_state is not (State.Message or State.AcceptedMessage))
        {
            throw new InvalidOperationException("MailAsync comes first");
        }
    }

    private MilterVerdict Fail(string reason)
    {
        _state = State.Failed;
        _sticky = MilterVerdict.Unavailable(reason);
        Close();
        _milter.ReportDown(reason);
        return _sticky;
    }

    /// <summary>The caller gave up mid-command (the SMTP session is ending): the dialogue is out of step, so the connection goes.</summary>
    private void Abandon()
    {
        _state = State.Failed;
        _sticky = MilterVerdict.Unavailable("the session gave up waiting");
        Close();
    }

    private void Close()
    {
        // Postfix's milter8_comm_error: after a failure the socket may be out of step; never reuse it.
        try
        {
            _socket?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        _stream?.Dispose();
        _socket?.Dispose();
        _stream = null;
        _socket = null;
    }

    private static bool IsMilterFailure(Exception e, CancellationToken callerToken) => e switch
    {
        OperationCanceledException => !callerToken.IsCancellationRequested,
        IOException or SocketException or MilterProtocolException or ObjectDisposedException or EndOfStreamException => true,
        _ => false,
    };

    private static string Describe(Exception e, string stage, TimeSpan timeout) => e switch
    {
        OperationCanceledException => $"no answer to {stage} within {timeout.TotalSeconds:0.###} s",
        EndOfStreamException => $"connection closed at {stage}",
        SocketException s => $"{stage}: {s.SocketErrorCode} ({s.Message})",
        IOException { InnerException: SocketException s } => $"{stage}: {s.SocketErrorCode} ({s.Message})",
        _ => $"{stage}: {e.Message}",
    };

    /// <summary>What the milter asks for at the end of message, checked against what it negotiated.</summary>
    private sealed class EndOfMessage(Stream? sink, long max, MilterActions actions)
    {
        private readonly List<MilterModification> _changes = [];
        private long _bodyLength = -1;

        public void Add(MilterReply.Change c)
        {
            // A change it did not negotiate is refused like Postfix does ("unexpected filter response").
            if ((actions & c.Needs) == 0)
            {
                throw new MilterProtocolException($"{c.Modification.GetType().Name} without having negotiated it");
            }
            _changes.Add(c.Modification);
        }

        public async Task AddBodyAsync(ReadOnlyMemory<byte> data, CancellationToken token)
        {
            if ((actions & MilterActions.ChangeBody) == 0)
            {
                throw new MilterProtocolException("body replacement without having negotiated it");
            }
            if (sink is null)
            {
                throw new MilterProtocolException("body replacement, and the session gave nowhere to put it");
            }
            _bodyLength = Math.Max(_bodyLength, 0) + data.Length;
            if (_bodyLength > max)
            {
                throw new MilterProtocolException($"replacement body larger than {max} octets");
            }
            await sink.WriteAsync(data, token);
        }

        public IReadOnlyList<MilterModification> Finish()
        {
            if (_bodyLength >= 0)
            {
                _changes.Add(new MilterModification.ReplaceBody(_bodyLength));
            }
            return _changes;
        }
    }
}
