using System.Buffers;

namespace Postern.Protocol.Parsing;

/// <summary>
/// Drops chosen header fields from a message as it streams to the spool: every field whose name is
/// <c>fieldName</c> is held (with its folded lines, at most <see cref="MaxHeld"/> octets) until it
/// ends, then <c>drop</c> decides. Other fields and the body go straight through; after the header
/// section nothing is looked at. Used to remove Authentication-Results fields that claim the
/// receiving server's own authserv-id (RFC 8601 §5).
/// </summary>
public sealed class HeaderFieldFilter(IBufferWriter<byte> inner, string fieldName, Func<ReadOnlyMemory<byte>, bool> drop) : IBufferWriter<byte>
{
    /// <summary>A field longer than this is let through undecided (and is no forgery of ours).</summary>
    public const int MaxHeld = 64 * 1024;
    private readonly byte[] _name = System.Text.Encoding.ASCII.GetBytes(fieldName.ToLowerInvariant());
    private readonly ArrayBufferWriter<byte> _hold = new(256);
    private byte[] _scratch = new byte[4096];
    private bool _done;
    private bool _atLineStart = true;
    private bool _crAtLineStart;
    private Mode _mode = Mode.Streaming;

    private enum Mode { Streaming, Undecided, Holding }

    /// <summary>Fields dropped so far.</summary>
    public int Dropped { get; private set; }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        if (_done)
        {
            return inner.GetMemory(sizeHint);
        }
        if (_scratch.Length < sizeHint)
        {
            _scratch = new byte[sizeHint];
        }
        return _scratch;
    }

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public void Advance(int count)
    {
        if (_done)
        {
            inner.Advance(count);
            return;
        }
        var data = _scratch.AsSpan(0, count);
        for (var i = 0; i < data.Length; i++)
        {
            if (_done)
            {
                inner.Write(data[i..]);
                return;
            }
            Step(data[i]);
        }
    }

    /// <summary>At the end of the message: a field still held is decided now.</summary>
    public void Complete()
    {
        if (!_done)
        {
            EndField();
            _done = true;
        }
    }

    private void Step(byte b)
    {
        if (_crAtLineStart)
        {
            _crAtLineStart = false;
            if (b == '\n')
            {
                inner.Write("\r\n"u8);
                _done = true; // the blank line: the body follows, untouched
                return;
            }
            // A lone CR (the data reader refuses those anyway): plain text of a new field.
            _mode = Mode.Undecided;
            _hold.Write("\r"u8);
        }
        else if (_atLineStart)
        {
            _atLineStart = false;
            if (b is (byte)' ' or (byte)'\t')
            {
                Emit(b); // a folded line of the current field
                return;
            }
            EndField();
            if (b == '\r')
            {
                _crAtLineStart = true;
                return;
            }
            _mode = Mode.Undecided;
        }
        Emit(b);
        if (_mode == Mode.Undecided && (b is (byte)':' or (byte)'\n' || _hold.WrittenCount > _name.Length + 8))
        {
            _mode = NameMatches() ? Mode.Holding : Mode.Streaming;
            if (_mode == Mode.Streaming)
            {
                Release();
            }
        }
        else if (_mode == Mode.Holding && _hold.WrittenCount > MaxHeld)
        {
            Release();
            _mode = Mode.Streaming;
        }
        if (b == '\n')
        {
            _atLineStart = true;
        }
    }

    private void Emit(byte b)
    {
        if (_mode == Mode.Streaming)
        {
            inner.GetSpan(1)[0] = b;
            inner.Advance(1);
        }
        else
        {
            _hold.GetSpan(1)[0] = b;
            _hold.Advance(1);
        }
    }

    /// <summary>The held bytes so far are "name" then optional white space then ':'.</summary>
    private bool NameMatches()
    {
        var held = _hold.WrittenSpan;
        var colon = held.IndexOf((byte)':');
        if (colon < 0)
        {
            return false;
        }
        var name = held[..colon].TrimEnd(" \t"u8);
        return name.Length == _name.Length && System.Text.Ascii.EqualsIgnoreCase(name, _name);
    }

    private void EndField()
    {
        if (_mode == Mode.Holding && drop(_hold.WrittenMemory))
        {
            Dropped++;
            _hold.Clear();
        }
        Release();
        _mode = Mode.Streaming;
    }

    private void Release()
    {
        if (_hold.WrittenCount > 0)
        {
            inner.Write(_hold.WrittenSpan);
            _hold.Clear();
        }
    }
}
