using System.Buffers;
using Postern.Protocol.Commands;
using Postern.Protocol.Parsing;
using Postern.Protocol.Replies;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// BDAT (RFC 3030): exactly Size octets follow the command. They are always read, whatever the
    /// reply, because anything else would read message octets as commands.
    /// </summary>
    private async Task BdatAsync(BdatCommand bdat)
    {
        var t = _transaction!;
        if (t.Writer is null)
        {
            if (!BeginMessage(t))
            {
                await DropChunkAsync();
                return;
            }
            t.Bdat = new BdatReader(Options.Limits.MaxMessageSize);
        }
        _engine.Succeeded(bdat);
        var checker = t.Bdat!;
        IBufferWriter<byte> sink = t.Headers!;
        // The engine counts the chunk's octets (RFC 3030: counted, never terminated).
        var complete = bdat.Size == 0;
        while (!complete)
        {
            var (kind, due) = DataDeadline(t.DataStarted, checker.Size);
            var result = await ReadAsync(kind, due);
            var reader = new SequenceReader<byte>(result.Buffer);
            complete = _engine.TakeChunk(ref reader, out var take);
            foreach (var segment in take)
            {
                if (checker.Check(segment.Span))
                {
                    sink.Write(segment.Span);
                }
            }
            _reader.AdvanceTo(reader.Position);
            _needMoreInput = !complete;
            if (!complete && result.IsCompleted)
            {
                throw new IOException("client closed the connection during BDAT");
            }
        }
        if (bdat.Last)
        {
            checker.CheckEnd(); // content ending in a lone CR is a bare CR too
        }
        if (checker.HasBareLineEnding)
        {
            RefuseContentAndClose("BDAT");
            return;
        }
        if (!bdat.Last)
        {
            Send(Reply.ChunkOk(bdat.Size));
            return;
        }
        await FinishMessageAsync(t, checker.Size, ContentRefusal(checker, t.Headers!, t.Mime!));
    }

    /// <summary>
    /// Reads and drops the chunk of a BDAT the server refused (the disk would not open the spool
    /// file): under the same deadlines as message data (Limits.DataTimeout and Limits.MinDataRate),
    /// or a byte now and then would hold the session for ever.
    /// </summary>
    private async Task DropChunkAsync()
    {
        var started = _ctx.Time.GetUtcNow();
        _engine.DropRestOfChunk();
        while (_engine.InChunk)
        {
            var (kind, due) = DataDeadline(started, _engine.ChunkRead);
            var result = await ReadAsync(kind, due);
            var reader = new SequenceReader<byte>(result.Buffer);
            var done = _engine.DrainChunk(ref reader);
            _reader.AdvanceTo(reader.Position);
            _needMoreInput = !done;
            if (!done && result.IsCompleted)
            {
                throw new IOException("client closed the connection during BDAT");
            }
        }
    }
}
