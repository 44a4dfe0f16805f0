using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using Postern.Protocol.Commands;
using Postern.Protocol.Parsing;
using Postern.Protocol.Replies;
using Postern.Protocol.Session;
using Postern.Server.Configuration;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

/// <summary>
/// One SMTP connection, from greeting to close: the I/O driver of the <see cref="SmtpEngine"/>. The
/// loop feeds the engine what the PipeReader has; the engine frames command lines, checks them against
/// the <see cref="CommandTable"/> and counts junk and BDAT octets; what it lets through is handed to
/// the file of its verb (SmtpSession.*.cs), which does the work that needs the server. Replies are buffered and flushed when no further input is waiting,
/// which is what PIPELINING needs (RFC 2920 §3.1). All waiting goes through <see cref="ReadAsync"/>,
/// the one place where timeouts and shutdown are enforced (STYLE principle 11).
/// </summary>
public sealed partial class SmtpSession : IAsyncDisposable
{
    private const int CommandLineLimit = 512;      // RFC 5321 §4.5.3.1.4
    private const int AuthLineLimit = 12288;       // RFC 4954 §4: at least 12288 octets for AUTH lines

    private readonly ServerContext _ctx;
    private readonly ListenerOptions _listener;
    private readonly Stream _network;
    private PipeReader _reader;
    private PipeWriter _writer;
    private readonly IPEndPoint _remote;
    private readonly string _id;
    private readonly DateTimeOffset _connectedAt; // port 465's handshake is counted from here
    private readonly TimeoutControl _timeouts; // every wait for the client runs under one deadline armed here
    private volatile bool _shutdownRequested;
    private bool _needMoreInput;
    private bool _closing;
    private string _closeReason = "quit";

    private readonly SmtpEngine _engine; // the dialogue's state, framing, command table and junk count
    private string? _helo;
    private bool _extended;
    private SslStream? _tls;
    private string? _user;
    private Transaction? _transaction;

    private int _messages;
    private int _recipients;
    private int _errors;
    private int _commands;

    public SmtpSession(ServerContext ctx, ListenerOptions listener, Stream network, IPEndPoint remote, string id)
    {
        _ctx = ctx;
        _listener = listener;
        _config = ctx.Configuration;
        _addresses = ctx.AddressBook.WithDomains(_config.LocalDomains);
        _network = network;
        _remote = remote;
        _id = id;
        (_reader, _writer) = CreatePipes(network);
        _connectedAt = ctx.Time.GetUtcNow();
        // A deadline that passes ends the wait it bounds: the pending read returns as cancelled (no
        // exception, the reader stays usable) and ReadAsync asks the control which deadline it was.
        _timeouts = new TimeoutControl(ctx.Time, _config.Options.Limits.SessionLifetime, OnDeadline);
        // Submission (587) refuses everything but the basics until STARTTLS (RFC 6409 §4.3, SPEC §2).
        _engine = new SmtpEngine(_config.Options.Domains[0], _config.Options.Limits.MaxJunkCommands)
        {
            TlsRequiredButMissing = listener.Role == ListenerRole.Submission,
        };
    }

    // The configuration this session works with: the one in force at connect, taken again when a
    // command arrives outside a transaction, and kept from MAIL to the transaction's end (never a mix
    // of two configurations inside one transaction; see ServerConfiguration).
    private ServerConfiguration _config;
    private Accounts.AddressBook _addresses; // with _config's local domains
    private PosternOptions Options => _config.Options;
    private EffectiveMailAuth MailAuthPolicy => _config.MailAuthFor(_listener);
    private bool IsTls => _tls is not null;
    private IPAddress RemoteIp => _remote.Address.IsIPv4MappedToIPv6 ? _remote.Address.MapToIPv4() : _remote.Address;
    private string Ip => RemoteIp.ToString();


    /// <summary>
    /// A deadline passed or the session was interrupted (on a timer's or the interrupter's thread):
    /// ends the wait under way. Never throws: the reader may already be completed (a TLS handshake
    /// replaced it, or the session is closing), and an exception here would end the process.
    /// </summary>
    private void OnDeadline()
    {
        try
        {
            _reader.CancelPendingRead();
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
        }
        CancelHandshake();
        if (_timeouts.Expired == Deadline.Write || (_timeouts.Interrupted && _transaction is null))
        {
            // A stuck write is given up at its deadline, or when the session is ended from outside
            // (shed, shutdown) and no transaction is under way.
            Volatile.Read(ref _writeExpired)?.TrySetResult();
        }
    }

    private static (PipeReader, PipeWriter) CreatePipes(Stream s) => (
        // Zero-byte reads: an idle connection holds no buffer while it waits.
        PipeReader.Create(s, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true)),
        PipeWriter.Create(s, new StreamPipeWriterOptions(minimumBufferSize: 1024, leaveOpen: true)));

    /// <summary>Runs the dialogue to its end. Never throws.</summary>
    public async Task RunAsync()
    {
        using var registration = _ctx.ShuttingDown.Register(() =>
        {
            _shutdownRequested = true;
            _timeouts.Interrupt(); // ends a wait outside a transaction; one inside finishes first
        });
        try
        {
            if (!_ctx.ClientLimits.TryConnect(_config, RemoteIp))
            {
                // Before any TLS handshake (cheap to refuse); on implicit TLS the client would not
                // understand a clear-text reply, so it is only closed.
                _errors++;
                Log.Rejected(_ctx.Logger, _id, null, Ip, "CONNECT", Reply.ConnectionRateExceeded.Code, Reply.ConnectionRateExceeded.Enhanced, RefusalReason.Rate.Word(), $"connections per minute from {Limits.ClientKey.Describe(Limits.ClientKey.For(RemoteIp))}");
                Metrics.Rejections.Add(1, new("listener", _listener.Name), new("code", Reply.ConnectionRateExceeded.Code));
                if (_listener.Role != ListenerRole.Submissions)
                {
                    await TrySendFinalAsync(Reply.ConnectionRateExceeded);
                }
                _closeReason = "connection rate";
                return;
            }
            var dnsbl = StartDnsblCheck(); // runs during the greeting pause: the two waits overlap
            if (!await GreetingPauseAsync() || await RefusedByDnsblAsync(dnsbl))
            {
                return;
            }
            if (_listener.Role == ListenerRole.Submissions && !await StartTlsHandshakeAsync(_connectedAt))
            {
                return;
            }
            Send(SmtpEngine.Greeting(Options.Hostname));
            await CommandLoopAsync();
        }
        catch (OperationCanceledException e)
        {
            // The wait's deadline came with the exception: the reply and the reason follow it (any
            // other cancellation is an interruption: shutdown, or shed).
            var expired = (e as DeadlineExpiredException)?.Deadline ?? Deadline.None;
            if (expired == Deadline.Lifetime)
            {
                LogLifetime();
            }
            var (reply, reason) = expired switch
            {
                Deadline.None => (ClosingReply, ClosingReason), // interrupted: shutdown, or shed
                Deadline.Data => (Reply.DataTimeout, "timeout"),
                Deadline.DataRate => (Reply.DataTooSlow, "data too slow"),
                Deadline.Lifetime => (Reply.SessionLifetimeReached, "session lifetime"),
                Deadline.Write => (null, "timeout"), // the client reads nothing: no last reply
                _ => (Reply.CommandTimeout, "timeout"),
            };
            if (reply is not null)
            {
                await TrySendFinalAsync(reply);
            }
            _closeReason = reason;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
        {
            _closeReason = "connection lost";
        }
        catch (Exception e)
        {
            _closeReason = "internal error";
            Log.SessionError(_ctx.Logger, _id, e.Message, e);
            await TrySendFinalAsync(Reply.LocalError);
        }
        finally
        {
            _transaction?.Abort();
            Log.Disconnect(_ctx.Logger, _id, Ip, _helo, _messages, _recipients, _errors, _commands, _closeReason);
        }
    }

    private async Task CommandLoopAsync()
    {
        while (!_closing)
        {
            if (_shutdownRequested && _transaction is null)
            {
                Send(ClosingReply);
                _closeReason = ClosingReason;
                break;
            }
            if (_timeouts.LifetimeOver)
            {
                // A command boundary past Limits.SessionLifetime: a client busy for ever is cut off too.
                LogLifetime();
                Send(Reply.SessionLifetimeReached);
                _closeReason = "session lifetime";
                break;
            }
            var step = await IdleUntilCommandAsync();
            if (step is null)
            {
                _closeReason = "client closed connection";
                return;
            }
            _commands++;
            if (_transaction is null)
            {
                TakeConfigurationInForce();
            }
            var errorsBefore = _errors;
            await DispatchAsync(step);
            if (_errors > errorsBefore && step is EngineStep.Execute { Command.Verb: var verb } && !CommandTable.IsJunk(verb))
            {
                // A refusal the server decided is junk too (the engine counted its own, and the junk verbs).
                _engine.CountJunk();
            }
            if (_engine.JunkOverLimit && !_closing)
            {
                RefuseJunk();
                break;
            }
            if (_errors > errorsBefore && _errors < Options.Limits.MaxErrors && !_closing
                && Limits.ClientLimits.ErrorDelay(Options.Limits, _errors) is { Ticks: > 0 } tarpit)
            {
                // The refusal waits (it is buffered, not yet sent): a guesser slows down, an honest client never gets here.
                // Shutdown cuts it short only outside a transaction (one under way is left to finish).
                await Task.Delay(tarpit, _ctx.Time, _transaction is null ? _ctx.ShuttingDown : CancellationToken.None).ConfigureAwait(false);
            }
            if (_errors >= Options.Limits.MaxErrors && !_closing)
            {
                Send(Reply.TooManyErrors);
                _closeReason = "too many errors";
                break;
            }
        }
        await FlushAsync();
    }

    private void RefuseJunk()
    {
        _errors++;
        Log.Rejected(_ctx.Logger, _id, _transaction?.Id.Value, Ip, "junk", Reply.TooManyJunkCommands.Code, Reply.TooManyJunkCommands.Enhanced, RefusalReason.JunkCommands.Word(), $"more than Limits.MaxJunkCommands ({Options.Limits.MaxJunkCommands}) commands that move no mail forward");
        Metrics.Rejections.Add(1, new("listener", _listener.Name), new("code", Reply.TooManyJunkCommands.Code));
        Send(Reply.TooManyJunkCommands);
        _closeReason = "too many junk commands";
    }

    private void LogLifetime() =>
        Log.Rejected(_ctx.Logger, _id, _transaction?.Id.Value, Ip, "lifetime", Reply.SessionLifetimeReached.Code, Reply.SessionLifetimeReached.Enhanced, RefusalReason.SessionLifetime.Word(), $"session older than Limits.SessionLifetime ({Options.Limits.SessionLifetime})");

    /// <summary>Between transactions: the configuration published by a reload since, if any, applies from this command on.</summary>
    private void TakeConfigurationInForce()
    {
        var now = _ctx.Configuration;
        if (!ReferenceEquals(now, _config))
        {
            _config = now;
            _addresses = _ctx.AddressBook.WithDomains(now.LocalDomains);
            _engine.PostmasterDomain = now.Options.Domains[0];
            _engine.MaxJunkCommands = now.Options.Limits.MaxJunkCommands;
        }
    }

    private async Task DispatchAsync(EngineStep step)
    {
        if (step is EngineStep.Refuse r)
        {
            RefuseForEngine(r);
            return;
        }
        var (command, moreBuffered) = (EngineStep.Execute)step;
        _pipelinedAfterLast = moreBuffered;
        switch (command)
        {
            case HeloCommand helo:
                if (!PipelinedTooEarly())
                {
                    Helo(helo);
                }
                break;
            case MailCommand mail: await MailAsync(mail); break;
            case RcptCommand rcpt: Rcpt(rcpt); break;
            case BdatCommand bdat: await BdatAsync(bdat); break;
            case AuthCommand auth: await AuthAsync(auth); break;
            case SimpleCommand { Verb: Verb.Data }: await DataAsync(); break;
            case SimpleCommand { Verb: Verb.StartTls }: await StartTlsAsync(); break;
            case SimpleCommand { Verb: Verb.Rset }:
                ResetTransaction();
                Send(Reply.ResetOk);
                break;
            case SimpleCommand { Verb: Verb.Noop }: Send(Reply.NoopOk); break;
            case SimpleCommand { Verb: Verb.Help }: Send(Reply.HelpText); break;
            // VRFY and EXPN would tell a harvester which addresses exist (RFC 5321 §7.3).
            case SimpleCommand { Verb: Verb.Vrfy }: Send(Reply.VrfyCannot); break;
            case SimpleCommand { Verb: Verb.Expn }: Refuse("EXPN", Reply.NotImplemented, RefusalReason.NotImplemented); break;
            case SimpleCommand { Verb: Verb.Quit }:
                Send(Reply.Bye);
                _closing = true;
                _closeReason = "quit";
                break;
            default:
                Refuse(command.Verb.ToString(), Reply.NotImplemented, RefusalReason.NotImplemented);
                break;
        }
    }

    /// <summary>Input that follows a command that must end a pipelined group was already buffered (RFC 2920 §3.1).</summary>
    private bool _pipelinedAfterLast;

    /// <summary>A refusal the engine decided by itself, logged with the server's reason word; some close the session.</summary>
    private void RefuseForEngine(EngineStep.Refuse r)
    {
        var reason = r.Why switch
        {
            EngineRefusal.BareLineEnding => RefusalReason.BareLineEnding,
            EngineRefusal.NonSmtp => RefusalReason.NonSmtp,
            EngineRefusal.LineTooLong => RefusalReason.LineTooLong,
            EngineRefusal.UnknownCommand => RefusalReason.UnknownCommand,
            EngineRefusal.JunkCommands => RefusalReason.JunkCommands,
            _ => RefusalReasons.Of(r.Reply),
        };
        if (r.Why == EngineRefusal.JunkCommands)
        {
            RefuseJunk();
            _closing = true;
            return;
        }
        var command = r.Why is EngineRefusal.BareLineEnding or EngineRefusal.NonSmtp or EngineRefusal.LineTooLong ? "line"
            : r.Verb == Verb.Unknown ? "unknown" : r.Verb.ToString();
        Refuse(command, r.Reply, reason);
        if (r.Close)
        {
            _closing = true;
            // SPEC §5: a bare CR or LF is never a line end; what follows it may be a smuggled command.
            _closeReason = r.Why == EngineRefusal.NonSmtp ? "non-SMTP input" : "bare CR or LF in command";
        }
    }

    /// <summary>Sends a refusal, counts it as an error and logs it with its reason word; the detail is the reply's text unless given.</summary>
    private void Refuse(string command, SmtpReply reply, RefusalReason reason, string? detail = null)
    {
        _errors++;
        Log.Rejected(_ctx.Logger, _id, _transaction?.Id.Value, Ip, command, reply.Code, reply.Enhanced, reason.Word(), detail ?? reply.Text);
        Metrics.Rejections.Add(1, new("listener", _listener.Name), new("code", reply.Code));
        Send(reply);
    }

    private void Send(SmtpReply reply) => _writer.Write(reply.ToBytes());

    /// <summary>
    /// Sends the buffered replies. A client that does not read its replies is given the command timeout,
    /// then dropped (the flush is cancelled): writes are bounded in time like reads.
    /// </summary>
    private async ValueTask FlushAsync()
    {
        if (_writer.UnflushedBytes == 0)
        {
            return;
        }
        var flush = _writer.FlushAsync();
        if (flush.IsCompleted)
        {
            await flush; // the usual case: the kernel took it at once, no timer needed
            return;
        }
        _timeouts.Arm(Deadline.Write, Options.Limits.CommandTimeout);
        try
        {
            var done = await WhenFlushedOrExpiredAsync(flush.AsTask());
            if (!done)
            {
                // Closing the socket ends the stuck write (the writer is never completed while its
                // flush runs); the session then ends as on a read timeout, or as interrupted.
                var expired = _timeouts.Expired;
                _network.Dispose();
                throw expired == Deadline.Write ? new DeadlineExpiredException(Deadline.Write) : new OperationCanceledException("interrupted while the client did not read its replies");
            }
        }
        finally
        {
            _timeouts.Disarm();
        }
    }

    private TaskCompletionSource? _writeExpired;

    /// <summary>True when the flush finished, false when the Write deadline passed first.</summary>
    private async Task<bool> WhenFlushedOrExpiredAsync(Task flush)
    {
        var expired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _writeExpired, expired);
        if (_timeouts.Expired == Deadline.Write || (_timeouts.Interrupted && _transaction is null))
        {
            expired.TrySetResult(); // passed before the completion source was in place
        }
        try
        {
            var first = await Task.WhenAny(flush, expired.Task);
            if (first == flush)
            {
                await flush;
                return true;
            }
            // Given up: the flush fails once the socket is closed; its exception is observed here.
            _ = flush.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return false;
        }
        finally
        {
            Volatile.Write(ref _writeExpired, null);
        }
    }

    /// <summary>How long a last reply may take to leave before the connection is closed anyway.</summary>
    private static readonly TimeSpan FinalReplyTimeout = TimeSpan.FromSeconds(5);

    private async Task TrySendFinalAsync(SmtpReply reply)
    {
        try
        {
            Send(reply);
            var flush = _writer.FlushAsync();
            if (flush.IsCompleted)
            {
                await flush;
                return;
            }
            _timeouts.Arm(Deadline.Write, FinalReplyTimeout);
            try
            {
                if (!await WhenFlushedOrExpiredAsync(flush.AsTask()))
                {
                    // The write is still under way: closing the socket ends it before the writer is completed.
                    _network.Dispose();
                }
            }
            finally
            {
                _timeouts.Disarm();
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
        }
    }

    /// <summary>
    /// The one place that waits for the client: flushes pending replies first (pipelining), then reads
    /// under the deadline of the current phase, armed on the <see cref="TimeoutControl"/>. A deadline
    /// that passes throws OperationCanceledException (the control says which one it was); an
    /// interruption (shutdown, shedding) does so only outside a transaction.
    /// </summary>
    private async ValueTask<ReadResult> ReadAsync(Deadline kind, DateTimeOffset due)
    {
        if (!_needMoreInput && _reader.TryRead(out var buffered))
        {
            if (!buffered.Buffer.IsEmpty || buffered.IsCompleted)
            {
                return buffered;
            }
            _reader.AdvanceTo(buffered.Buffer.Start);
        }
        await FlushAsync();
        if (_timeouts.Interrupted && _transaction is null)
        {
            throw new OperationCanceledException();
        }
        _timeouts.ArmUntil(kind, due);
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync();
                if (result.IsCanceled && (_timeouts.Expired != Deadline.None || (_timeouts.Interrupted && _transaction is null)))
                {
                    // (What the buffer holds is a partial line or partial data: it never completes now.)
                    _reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
                    var expired = _timeouts.Expired;
                    throw expired == Deadline.None ? new OperationCanceledException() : new DeadlineExpiredException(expired);
                }
                if (!result.IsCanceled || !result.Buffer.IsEmpty)
                {
                    _needMoreInput = false;
                    return result;
                }
                // A cancellation meant for an earlier wait, or an interruption a transaction outlives: wait on.
                _reader.AdvanceTo(result.Buffer.Start);
            }
        }
        finally
        {
            _timeouts.Disarm();
        }
    }

    /// <summary>
    /// Feeds the engine until it has a step (a command to execute or a refusal); null when the client
    /// has gone. A BDAT chunk the engine drops is read here under the data deadlines (DataTimeout and
    /// MinDataRate), never as commands.
    /// </summary>
    private async ValueTask<EngineStep?> ReadCommandAsync()
    {
        // One deadline for the whole line: a client sending a byte now and then (slowloris) does
        // not get a fresh timeout with each byte.
        // (The control cuts it at Limits.SessionLifetime: an idle client is not kept past it either.)
        var deadline = _ctx.Time.GetUtcNow() + Options.Limits.CommandTimeout;
        DateTimeOffset? dropStarted = null;
        while (true)
        {
            var (kind, due) = (Deadline.Command, deadline);
            if (_engine.InChunk)
            {
                dropStarted ??= _ctx.Time.GetUtcNow();
                (kind, due) = DataDeadline(dropStarted.Value, _engine.ChunkRead);
            }
            var result = await ReadAsync(kind, due);
            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            var step = _engine.Next(ref reader);
            if (step is EngineStep.NeedMore)
            {
                // Keep what is unread (a partial line), ask for more.
                _reader.AdvanceTo(reader.Position, buffer.End);
                _needMoreInput = true;
                if (result.IsCompleted)
                {
                    if (_engine.InChunk)
                    {
                        throw new IOException("client closed the connection during BDAT");
                    }
                    return null;
                }
                continue;
            }
            _reader.AdvanceTo(reader.Position);
            return step;
        }
    }

    /// <summary>
    /// Reads one line in an AUTH exchange (RFC 4954 §4); null when the client has gone. All the
    /// lines of one exchange share one deadline, Limits.HandshakeTimeout from the AUTH command, and
    /// a client that stalls in the middle counts as idle since then: a listener at its cap may shed it.
    /// </summary>
    private async ValueTask<string?> ReadAuthLineAsync(DateTimeOffset exchangeStarted)
    {
        var exchangeEnd = exchangeStarted + Options.Limits.HandshakeTimeout;
        Volatile.Write(ref _idleSince, exchangeStarted.UtcTicks);
        try
        {
            return await ReadAuthLineUntilAsync(exchangeEnd);
        }
        finally
        {
            Volatile.Write(ref _idleSince, 0);
        }
    }

    private async ValueTask<string?> ReadAuthLineUntilAsync(DateTimeOffset exchangeEnd)
    {
        while (true)
        {
            var result = await ReadAsync(Deadline.Handshake, exchangeEnd);
            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            var status = LineReader.TryRead(ref reader, AuthLineLimit, out var line);
            if (status == LineStatus.Incomplete)
            {
                _reader.AdvanceTo(buffer.Start, buffer.End);
                _needMoreInput = true;
                if (result.IsCompleted)
                {
                    return null;
                }
                continue;
            }
            var text = status == LineStatus.Line ? System.Text.EncodingExtensions.GetString(System.Text.Encoding.ASCII, line) : "\0";
            if (status == LineStatus.TooLong)
            {
                _engine.SkipRestOfLine();
            }
            _reader.AdvanceTo(reader.Position);
            return text;
        }
    }

    private void ResetTransaction()
    {
        _transaction?.Abort();
        _transaction = null;
        _engine.ResetTransaction();
    }

    /// <summary>
    /// Closes without writing: whatever is still unsent is dropped (completing the writer with an error
    /// skips its final flush), so a client that stopped reading cannot hold the teardown. Never throws.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        var closed = new IOException("session closed");
        try
        {
            await _reader.CompleteAsync(closed);
            await _writer.CompleteAsync(closed);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
        }
        try
        {
            if (_tls is not null)
            {
                await _tls.DisposeAsync();
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
        }
        await _network.DisposeAsync();
        _timeouts.Dispose();
    }
}
