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
                await DiscardChunkAsync(bdat.Size);
                return;
            }
            t.Bdat = new BdatReader(Options.Limits.MaxMessageSize);
            _state = SessionState.Bdat;
        }
        var checker = t.Bdat!;
        IBufferWriter<byte> sink = t.Headers!;
        t.InData = true;
        _readingData = true;
        var remaining = bdat.Size;
        while (remaining > 0)
        {
            var result = await ReadAsync(DataReadTimeout(t.DataStarted, checker.Size));
            var buffer = result.Buffer;
            var take = buffer.Slice(0, Math.Min(remaining, buffer.Length));
            foreach (var segment in take)
            {
                if (checker.Check(segment.Span))
                {
                    sink.Write(segment.Span);
                }
            }
            remaining -= take.Length;
            _reader.AdvanceTo(take.End);
            _needMoreInput = remaining > 0;
            if (remaining > 0 && result.IsCompleted)
            {
                throw new IOException("client closed the connection during BDAT");
            }
        }
        t.InData = false;
        _readingData = false;
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
        await FinishMessageAsync(t, checker.Size, ContentRefusal(checker, t.Headers!));
    }

    /// <summary>
    /// Reads and drops a chunk that will not be used (BDAT out of sequence, or refused): under the
    /// same deadlines as message data (Limits.DataTimeout and Limits.MinDataRate), or a byte now and
    /// then would hold the session for ever.
    /// </summary>
    private async Task DiscardChunkAsync(long size)
    {
        var started = _ctx.Time.GetUtcNow();
        long read = 0;
        _readingData = true;
        while (size > 0)
        {
            var result = await ReadAsync(DataReadTimeout(started, read));
            var take = Math.Min(size, result.Buffer.Length);
            _reader.AdvanceTo(result.Buffer.GetPosition(take));
            size -= take;
            read += take;
            _needMoreInput = size > 0;
            if (size > 0 && result.IsCompleted)
            {
                throw new IOException("client closed the connection during BDAT");
            }
        }
        _readingData = false;
    }
}
