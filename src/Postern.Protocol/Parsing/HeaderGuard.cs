using System.Buffers;

namespace Postern.Protocol.Parsing;

/// <summary>
/// Counts the header section of a message as it streams past (the octets go straight on to
/// <c>inner</c>, never held): its size, its fields, and its Received fields (the hop count,
/// RFC 5321 §6.3). Scanning stops at the blank line that ends the header section, so the body
/// costs nothing. The session refuses the message at its end when a limit was passed.
/// </summary>
public sealed class HeaderGuard(IBufferWriter<byte> inner) : IBufferWriter<byte>
{
    private static ReadOnlySpan<byte> Received => "received:"u8;
    private Memory<byte> _last;
    private bool _done;
    private bool _atLineStart = true;
    private bool _crAtLineStart;
    private int _prefix = -1; // how much of "received:" the current field name has matched; -1: not matching

    /// <summary>Octets of the header section seen so far.</summary>
    public long HeaderBytes { get; private set; }

    /// <summary>Header fields (lines that do not start with white space).</summary>
    public int Fields { get; private set; }

    /// <summary>Received fields: one per hop.</summary>
    public int Hops { get; private set; }

    /// <summary>True once the blank line after the header section has passed.</summary>
    public bool HeaderComplete => _done;

    public Memory<byte> GetMemory(int sizeHint = 0) => _last = inner.GetMemory(sizeHint);

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public void Advance(int count)
    {
        if (!_done)
        {
            Scan(_last.Span[..count]);
        }
        inner.Advance(count);
    }

    private void Scan(ReadOnlySpan<byte> data)
    {
        for (var i = 0; i < data.Length && !_done; i++)
        {
            var b = data[i];
            HeaderBytes++;
            if (_crAtLineStart)
            {
                // CR first on a line, then LF: the blank line that ends the header section.
                _crAtLineStart = false;
                if (b == '\n')
                {
                    _done = true;
                    continue;
                }
            }
            else if (_atLineStart)
            {
                _atLineStart = false;
                if (b == '\r')
                {
                    _crAtLineStart = true;
                    continue;
                }
                if (b is (byte)' ' or (byte)'\t')
                {
                    _prefix = -1; // a folded continuation of the field before
                    continue;
                }
                Fields++;
                _prefix = 0;
            }
            if (b == '\n')
            {
                _atLineStart = true;
                _prefix = -1;
                continue;
            }
            if (_prefix >= 0)
            {
                if ((b | 0x20) == Received[_prefix])
                {
                    if (++_prefix == Received.Length)
                    {
                        Hops++;
                        _prefix = -1;
                    }
                }
                else
                {
                    _prefix = -1;
                }
            }
        }
    }
}
