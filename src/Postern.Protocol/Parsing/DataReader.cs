using System.Buffers;

namespace Postern.Protocol.Parsing;

/// <summary>What <see cref="DataReader.Read"/> reached.</summary>
public enum DataStatus
{
    /// <summary>All input consumed; the end of data has not been seen.</summary>
    NeedMore,
    /// <summary>The CRLF.CRLF end was seen and consumed.</summary>
    Complete,
    /// <summary>A bare CR or LF: the caller refuses the message and closes the connection (SPEC §5).</summary>
    BareLineEnding,
}

/// <summary>
/// The one type that owns the CRLF and dot rules of DATA (STYLE principle 3).
/// A byte state machine: only &lt;CRLF&gt;.&lt;CRLF&gt; ends the data (RFC 5321 §4.1.1.4), a leading dot
/// is removed (§4.5.2), and a CR not followed by LF or an LF not preceded by CR stops the reader,
/// which is what makes SMTP smuggling impossible: no alternative end-of-data is ever accepted,
/// and the connection is closed before anything behind it could be read as a command.
/// Over-long lines, NUL octets and an oversized message switch to discard mode: the reader keeps
/// going to the real end so that the dialogue stays in step, and the caller then refuses.
/// </summary>
public sealed class DataReader(long maxSize, int maxLineLength = 1000) : ContentReader(maxSize, maxLineLength)
{
    private const byte Cr = (byte)'\r';
    private const byte Lf = (byte)'\n';
    private const byte Dot = (byte)'.';

    private enum State : byte { LineStart, InLine, SawCr, Dot, DotCr }

    private State _state = State.LineStart;
    private int _lineLength;

    /// <summary>True once any octet above 127 was seen.</summary>
    public bool HasEightBit { get; private set; }

    /// <summary>
    /// Consumes input, writing unstuffed content to <paramref name="output"/> until the end of data.
    /// <paramref name="consumed"/> is where the caller should advance its pipe to.
    /// </summary>
    public DataStatus Read(in ReadOnlySequence<byte> input, IBufferWriter<byte> output, out SequencePosition consumed)
    {
        consumed = input.Start;
        long offset = 0;
        foreach (var segment in input)
        {
            var span = segment.Span;
            var status = ReadSpan(span, output, out var used);
            offset += used;
            if (status != DataStatus.NeedMore)
            {
                consumed = input.GetPosition(offset);
                return status;
            }
        }
        consumed = input.End;
        return DataStatus.NeedMore;
    }

    private DataStatus ReadSpan(ReadOnlySpan<byte> span, IBufferWriter<byte> output, out int used)
    {
        var runStart = 0;
        var state = _state;
        var lineLength = _lineLength;
        var i = 0;
        for (; i < span.Length; i++)
        {
            var b = span[i];
            switch (state)
            {
                case State.LineStart:
                    if (b == Dot)
                    {
                        // The dot is never content: either stuffing to remove, or the end marker.
                        Emit(span[runStart..i], output);
                        runStart = i + 1;
                        state = State.Dot;
                        continue;
                    }
                    goto case State.InLine;
                case State.InLine:
                    if (b == Cr)
                    {
                        state = State.SawCr;
                    }
                    else if (b == Lf)
                    {
                        used = i + 1;
                        Finish(state, lineLength);
                        return DataStatus.BareLineEnding;
                    }
                    else
                    {
                        state = State.InLine;
                        if (b == 0)
                        {
                            HasNul = true;
                        }
                        else if (b > 127)
                        {
                            HasEightBit = true;
                        }
                    }
                    lineLength++;
                    break;
                case State.Dot:
                    if (b == Cr)
                    {
                        state = State.DotCr;
                        runStart = i + 1;
                        continue;
                    }
                    if (b == Lf)
                    {
                        used = i + 1;
                        Finish(state, lineLength);
                        return DataStatus.BareLineEnding;
                    }
                    // RFC 5321 §4.5.2: a leading dot followed by other characters is deleted.
                    state = State.InLine;
                    i--;
                    continue;
                case State.SawCr:
                    if (b != Lf)
                    {
                        used = i + 1;
                        Finish(state, lineLength);
                        return DataStatus.BareLineEnding;
                    }
                    lineLength++;
                    if (lineLength > MaxLineLength)
                    {
                        LineTooLong = true;
                    }
                    lineLength = 0;
                    state = State.LineStart;
                    break;
                case State.DotCr:
                    used = i + 1;
                    if (b != Lf)
                    {
                        Finish(state, lineLength);
                        return DataStatus.BareLineEnding;
                    }
                    Emit(span[runStart..i], output);
                    Finish(State.LineStart, 0);
                    return DataStatus.Complete;
            }
        }
        if (state != State.DotCr && state != State.Dot)
        {
            Emit(span[runStart..], output);
        }
        used = span.Length;
        Finish(state, lineLength);
        return DataStatus.NeedMore;
    }

    private void Finish(State state, int lineLength)
    {
        _state = state;
        _lineLength = lineLength;
        if (lineLength > MaxLineLength)
        {
            LineTooLong = true;
        }
    }

    private void Emit(ReadOnlySpan<byte> run, IBufferWriter<byte> output)
    {
        if (run.IsEmpty)
        {
            return;
        }
        Size += run.Length;
        if (Size > MaxSize)
        {
            TooBig = true;
        }
        if (!Discarding)
        {
            output.Write(run);
        }
    }
}
