using System.Buffers;
using Postern.Protocol.Parsing;

namespace Postern.Fuzz;

/// <summary>
/// DATA content through <see cref="DataReader"/>, split every way <see cref="Chunking"/> knows, and
/// compared with a plain model of RFC 5321 §4.1.1.4 and §4.5.2 written for clarity, not speed:
/// the same end (or the same refusal, at the same octet), the same content, the same flags.
/// In particular the reader never yields content past the one real CRLF.CRLF.
/// </summary>
public static class DataTarget
{
    /// <summary>The server's limits, and tight ones that small inputs can pass.</summary>
    private static readonly (long MaxSize, int MaxLine)[] Limits = [(1 << 20, 1000), (64, 16)];

    public static void Run(ReadOnlySpan<byte> input)
    {
        var bytes = input.ToArray();
        foreach (var (maxSize, maxLine) in Limits)
        {
            var model = Model.Of(bytes, maxLine);
            foreach (var pieces in Chunking.Of(input))
            {
                // As the session does: one Read per arrival, and also everything buffered at once in several segments.
                Check(model, bytes, maxSize, ReadPieceByPiece(bytes, pieces, maxSize, maxLine));
                Check(model, bytes, maxSize, ReadAsOneSequence(bytes, pieces, maxSize, maxLine));
            }
        }
    }

    private sealed record Outcome(DataStatus Status, long Consumed, byte[] Output, DataReader Reader);

    private static Outcome ReadPieceByPiece(byte[] bytes, int[] pieces, long maxSize, int maxLine)
    {
        var reader = new DataReader(maxSize, maxLine);
        var output = new ArrayBufferWriter<byte>();
        long offset = 0;
        foreach (var n in pieces)
        {
            var piece = new ReadOnlySequence<byte>(bytes, (int)offset, n);
            var status = reader.Read(piece, output, out var consumed);
            var used = piece.Slice(0, consumed).Length;
            if (status != DataStatus.NeedMore)
            {
                return new Outcome(status, offset + used, output.WrittenSpan.ToArray(), reader);
            }
            Expect.That(used == n, "NeedMore consumes everything it was given");
            offset += n;
        }
        return new Outcome(DataStatus.NeedMore, offset, output.WrittenSpan.ToArray(), reader);
    }

    private static Outcome ReadAsOneSequence(byte[] bytes, int[] pieces, long maxSize, int maxLine)
    {
        var reader = new DataReader(maxSize, maxLine);
        var output = new ArrayBufferWriter<byte>();
        var sequence = Chunking.ToSequence(bytes, pieces);
        var status = reader.Read(sequence, output, out var consumed);
        return new Outcome(status, sequence.Slice(0, consumed).Length, output.WrittenSpan.ToArray(), reader);
    }

    private static void Check(Model model, byte[] input, long maxSize, Outcome got)
    {
        Expect.That(got.Status == model.Status, $"status {got.Status}, the model says {model.Status}");
        Expect.That(got.Consumed == model.Consumed, $"consumed {got.Consumed} octets, the model says {model.Consumed}");
        Expect.That(got.Consumed <= input.Length, "consumed more than the input");
        // What was written is always the start of the real content, never anything past the end of data.
        Expect.That(got.Output.AsSpan().SequenceEqual(model.Content.AsSpan(0, Math.Min(got.Output.Length, model.Content.Length)))
                    && got.Output.Length <= model.Content.Length, "output is not a prefix of the content");
        if (model.Status == DataStatus.Complete)
        {
            Expect.That(got.Consumed >= 3 && input.AsSpan((int)got.Consumed - 3, 3).SequenceEqual(".\r\n"u8)
                        && (got.Consumed == 3 || input.AsSpan((int)got.Consumed - 5, 2).SequenceEqual("\r\n"u8)),
                "Complete without CRLF.CRLF at the end of what was consumed");
        }
        if (model.Status == DataStatus.BareLineEnding)
        {
            return; // the session refuses and closes: nothing else of the reader is used
        }
        var reader = got.Reader;
        Expect.That(reader.Size == model.Content.Length, $"Size {reader.Size}, content {model.Content.Length}");
        Expect.That(reader.HasNul == model.HasNul, "HasNul differs from the model");
        Expect.That(reader.HasEightBit == model.HasEightBit, "HasEightBit differs from the model");
        Expect.That(reader.LineTooLong == model.LineTooLong, "LineTooLong differs from the model");
        Expect.That(reader.TooBig == (model.Content.Length > maxSize), "TooBig differs from the model");
        if (!reader.Discarding)
        {
            Expect.That(got.Output.AsSpan().SequenceEqual(model.Content), "content kept while not discarding differs from the model");
        }
    }

    /// <summary>The rules, one line at a time.</summary>
    private sealed record Model(DataStatus Status, long Consumed, byte[] Content, bool HasNul, bool HasEightBit, bool LineTooLong)
    {
        public static Model Of(byte[] input, int maxLine)
        {
            var content = new List<byte>();
            bool nul = false, eightBit = false, tooLong = false;
            var n = input.Length;
            var i = 0;
            Model End(DataStatus status, long consumed, int lineLength)
            {
                tooLong |= lineLength > maxLine;
                return new Model(status, consumed, content.ToArray(), nul, eightBit, tooLong);
            }
            while (true)
            {
                // A line starts at i. A leading dot is either the end marker or stuffing (§4.5.2).
                if (i < n && input[i] == '.')
                {
                    if (i + 1 >= n)
                    {
                        return End(DataStatus.NeedMore, n, 0);
                    }
                    if (input[i + 1] == '\r')
                    {
                        if (i + 2 >= n)
                        {
                            return End(DataStatus.NeedMore, n, 0);
                        }
                        return input[i + 2] == '\n' ? End(DataStatus.Complete, i + 3, 0) : End(DataStatus.BareLineEnding, i + 3, 0);
                    }
                    if (input[i + 1] == '\n')
                    {
                        return End(DataStatus.BareLineEnding, i + 2, 0);
                    }
                    i++;
                }
                var length = 0;
                while (true)
                {
                    if (i >= n)
                    {
                        return End(DataStatus.NeedMore, n, length);
                    }
                    var b = input[i];
                    if (b == '\n')
                    {
                        return End(DataStatus.BareLineEnding, i + 1, length);
                    }
                    if (b == '\r')
                    {
                        content.Add(b);
                        length++;
                        if (i + 1 >= n)
                        {
                            return End(DataStatus.NeedMore, n, length);
                        }
                        if (input[i + 1] != '\n')
                        {
                            return End(DataStatus.BareLineEnding, i + 2, length);
                        }
                        content.Add((byte)'\n');
                        length++;
                        tooLong |= length > maxLine;
                        i += 2;
                        break;
                    }
                    nul |= b == 0;
                    eightBit |= b > 127;
                    content.Add(b);
                    length++;
                    i++;
                }
            }
        }
    }
}
