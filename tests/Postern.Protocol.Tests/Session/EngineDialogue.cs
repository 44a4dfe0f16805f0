using System.Buffers;
using System.Text;
using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Protocol.Session;

namespace Postern.Protocol.Tests.Session;

/// <summary>
/// A minimal in-memory driver of <see cref="SmtpEngine"/> for transcript tests: it plays a server
/// that accepts every command the engine lets through (MAIL, RCPT, BDAT chunks), so what a
/// transcript checks is the engine's own work: framing, sequence, junk, BDAT counting, closing.
/// The input can be fed in pieces of any size, as a network delivers it.
/// </summary>
internal sealed class EngineDialogue
{
    private readonly SmtpEngine _engine;
    private readonly List<byte> _pending = [];

    public EngineDialogue(int maxJunkCommands = 100, bool tlsRequired = false)
    {
        _engine = new SmtpEngine("example.test", maxJunkCommands) { TlsRequiredButMissing = tlsRequired };
        Replies.Add(SmtpEngine.Greeting("mx.example.test"));
    }

    public SmtpEngine Engine => _engine;
    public List<SmtpReply> Replies { get; } = [];
    public List<EngineRefusal> Refusals { get; } = [];
    public List<string> Chunks { get; } = [];
    public bool Closed { get; private set; }

    /// <summary>Replies as "code enhanced" strings, e.g. "250 2.1.0".</summary>
    public IEnumerable<string> Codes => Replies.Select(r => r.Enhanced is null ? r.Code.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{r.Code} {r.Enhanced}");

    /// <summary>Feeds <paramref name="text"/> in pieces of <paramref name="piece"/> octets (0: all at once).</summary>
    public EngineDialogue Send(string text, int piece = 0)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        piece = piece <= 0 ? bytes.Length : piece;
        for (var i = 0; i < bytes.Length && !Closed; i += piece)
        {
            _pending.AddRange(bytes.AsSpan(i, Math.Min(piece, bytes.Length - i)).ToArray());
            Pump();
        }
        return this;
    }

    private string? _chunk;

    private void Pump()
    {
        while (!Closed)
        {
            var seq = new ReadOnlySequence<byte>(_pending.ToArray());
            var reader = new SequenceReader<byte>(seq);
            if (_chunk is not null)
            {
                var complete = _engine.TakeChunk(ref reader, out var piece);
                _chunk += Encoding.Latin1.GetString(piece.ToArray());
                _pending.RemoveRange(0, (int)reader.Consumed);
                if (!complete)
                {
                    return;
                }
                Chunks.Add(_chunk);
                Replies.Add(Reply.ChunkOk(_chunk.Length));
                _chunk = null;
                continue;
            }
            var step = _engine.Next(ref reader);
            _pending.RemoveRange(0, (int)reader.Consumed);
            switch (step)
            {
                case EngineStep.NeedMore:
                    return;
                case EngineStep.Refuse r:
                    Replies.Add(r.Reply);
                    Refusals.Add(r.Why);
                    Closed = r.Close;
                    break;
                case EngineStep.Execute e:
                    Execute(e.Command);
                    break;
            }
            if (!Closed && _engine.JunkOverLimit)
            {
                Replies.Add(Reply.TooManyJunkCommands);
                Closed = true;
            }
        }
    }

    private void Execute(SmtpCommand command)
    {
        switch (command)
        {
            case HeloCommand h:
                _engine.ResetTransaction();
                _engine.Succeeded(h);
                Replies.Add(h.Extended ? SmtpEngine.EhloReply("mx.example.test", h.Domain, "192.0.2.1", 1000, true, false) : new SmtpReply(250, null, "mx.example.test"));
                break;
            case MailCommand m:
                _engine.Succeeded(m);
                Replies.Add(Reply.SenderOk);
                break;
            case RcptCommand r:
                _engine.Succeeded(r);
                Replies.Add(Reply.RecipientOk);
                break;
            case BdatCommand b:
                _engine.Succeeded(b);
                _chunk = "";
                if (b.Size == 0)
                {
                    Chunks.Add("");
                    Replies.Add(Reply.ChunkOk(0));
                    _chunk = null;
                }
                break;
            case SimpleCommand { Verb: Verb.Rset }:
                _engine.ResetTransaction();
                Replies.Add(Reply.ResetOk);
                break;
            case SimpleCommand { Verb: Verb.Quit }:
                Replies.Add(Reply.Bye);
                Closed = true;
                break;
            case SimpleCommand { Verb: Verb.Data } d:
                // Content is the DataReader's (tested on its own); the transcript stops at 354.
                _engine.Succeeded(d);
                Replies.Add(Reply.StartData);
                break;
            case SimpleCommand { Verb: Verb.Help }:
                Replies.Add(Reply.HelpText);
                break;
            case SimpleCommand { Verb: Verb.Vrfy }:
                Replies.Add(Reply.VrfyCannot);
                break;
            default:
                Replies.Add(Reply.NoopOk);
                break;
        }
    }
}
