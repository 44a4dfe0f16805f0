using System.Buffers.Binary;
using System.Text;

namespace Postern.Server.Filters.Milter;

/// <summary>
/// Builds the MTA's frames (sans I/O): a 4-byte big-endian length, the command byte, its data. One
/// instance per milter connection, reused: <see cref="Begin"/> … <see cref="End"/> appends a frame,
/// <see cref="Written"/> is what to send, <see cref="Clear"/> starts over.
/// </summary>
internal sealed class MilterFrame
{
    private byte[] _buffer = new byte[1024];
    private int _length;
    private int _frameStart = -1;

    /// <summary>The frames built since the last <see cref="Clear"/>.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _length);

    public void Clear()
    {
        _length = 0;
        _frameStart = -1;
        if (_buffer.Length > 256 * 1024)
        {
            // A body chunk grew it; do not keep that much for the rest of the session.
            _buffer = new byte[1024];
        }
    }

    public MilterFrame Begin(byte command)
    {
        if (_frameStart >= 0)
        {
            throw new InvalidOperationException("a frame is already open");
        }
        _frameStart = _length;
        Reserve(5);
        _length += 4;
        _buffer[_length++] = command;
        return this;
    }

    public MilterFrame End()
    {
        if (_frameStart < 0)
        {
            throw new InvalidOperationException("no frame is open");
        }
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(_frameStart), (uint)(_length - _frameStart - 4));
        _frameStart = -1;
        return this;
    }

    public MilterFrame Byte(byte value)
    {
        Reserve(1);
        _buffer[_length++] = value;
        return this;
    }

    public MilterFrame UInt16(ushort value)
    {
        Reserve(2);
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.AsSpan(_length), value);
        _length += 2;
        return this;
    }

    public MilterFrame UInt32(uint value)
    {
        Reserve(4);
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(_length), value);
        _length += 4;
        return this;
    }

    public MilterFrame Bytes(ReadOnlySpan<byte> value)
    {
        Reserve(value.Length);
        value.CopyTo(_buffer.AsSpan(_length));
        _length += value.Length;
        return this;
    }

    /// <summary>
    /// A NUL-terminated string. A NUL inside would end it early on the milter's side and shift every
    /// field after it, so NULs are left out (SMTP text never carries them legitimately).
    /// </summary>
    public MilterFrame CString(ReadOnlySpan<byte> value)
    {
        Reserve(value.Length + 1);
        foreach (var b in value)
        {
            if (b != 0)
            {
                _buffer[_length++] = b;
            }
        }
        _buffer[_length++] = 0;
        return this;
    }

    public MilterFrame CString(string value) => CString(Encoding.UTF8.GetBytes(value));

    private void Reserve(int more)
    {
        if (_length + more > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + more));
        }
    }
}
