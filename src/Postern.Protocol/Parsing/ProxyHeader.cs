using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Numerics;

namespace Postern.Protocol.Parsing;

/// <summary>What the proxy says about the connection it carries.</summary>
public enum ProxyCommand
{
    /// <summary>Relayed on behalf of a client: <see cref="ProxyHeader.Source"/> is that client (unless the proxy could not tell).</summary>
    Proxy,
    /// <summary>v2 LOCAL: the proxy's own connection (a health check); the connection's endpoints stand.</summary>
    Local,
}

/// <summary>What <see cref="ProxyHeader.TryParse(in ReadOnlySequence{byte})"/> found.</summary>
public enum ProxyHeaderStatus
{
    /// <summary>A whole, valid header of <see cref="ProxyParseResult.Length"/> octets.</summary>
    Complete,
    /// <summary>Valid so far; read at most <see cref="ProxyParseResult.Wanted"/> more octets, then try again.</summary>
    Incomplete,
    /// <summary>Not a PROXY header, or a malformed one (<see cref="ProxyParseResult.Error"/> says why): drop the connection.</summary>
    Invalid,
}

/// <summary>
/// The outcome of one parse. <see cref="Wanted"/> is how many more octets certainly belong to the
/// header, so that a reader that asks for no more than that never consumes a byte of the protocol
/// behind it (SMTP, which must not be read before the header is whole).
/// </summary>
public readonly record struct ProxyParseResult(ProxyHeaderStatus Status, ProxyHeader? Header, int Length, int Wanted, string? Error)
{
    internal static ProxyParseResult Bad(string error) => new(ProxyHeaderStatus.Invalid, null, 0, 0, error);
    internal static ProxyParseResult More(int wanted) => new(ProxyHeaderStatus.Incomplete, null, 0, wanted, null);
    internal static ProxyParseResult Done(ProxyHeader header, int length) => new(ProxyHeaderStatus.Complete, header, length, 0, null);
}

/// <summary>
/// A PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), parsed without I/O.
/// A proxy in front of Postern sends it first on each connection so that the client's real address,
/// not the proxy's, drives limits, relaying decisions, logs and the Received header. Only what an
/// SMTP server can use is accepted: the PROXY and LOCAL commands, TCP over IPv4 or IPv6, and the
/// "unknown" forms (v1 UNKNOWN, v2 AF_UNSPEC) for which the connection's own endpoints stand.
/// Everything else, and anything that does not match the format exactly, is invalid: the spec
/// (§2.1) asks the receiver to abort rather than guess.
/// </summary>
public sealed record ProxyHeader(int Version, ProxyCommand Command, IPEndPoint? Source, IPEndPoint? Destination)
{
    /// <summary>proxy-protocol.txt §2.1: the longest v1 line, "PROXY UNKNOWN" with two full IPv6 addresses, is 107 octets with its CRLF.</summary>
    public const int MaxV1Length = 107;

    /// <summary>The shortest v1 line, "PROXY UNKNOWN\r\n".</summary>
    private const int MinV1Length = 15;

    /// <summary>proxy-protocol.txt §2.2: signature (12), version and command, family and transport, length (2).</summary>
    public const int V2FixedLength = 16;

    /// <summary>
    /// The largest v2 address block (addresses and TLVs) accepted. The length field allows 65535;
    /// real proxies send the addresses plus a few TLVs (HAProxy's SSL details, a unique id of at
    /// most 128 octets, AWS's endpoint id), well under this bound.
    /// </summary>
    public const int MaxV2AddressBlock = 2048;

    /// <summary>The longest header this parser ever accepts: a reader's buffer of this size always suffices.</summary>
    public const int MaxLength = V2FixedLength + MaxV2AddressBlock;

    private const int Ipv4Block = 4 + 4 + 2 + 2;
    private const int Ipv6Block = 16 + 16 + 2 + 2;
    private const byte TlvCrc32C = 0x03;

    private static ReadOnlySpan<byte> V2Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
    private static ReadOnlySpan<byte> V1Prefix => "PROXY "u8;

    /// <summary>Parses the header at the start of <paramref name="input"/>; bytes after it are not looked at.</summary>
    public static ProxyParseResult TryParse(in ReadOnlySequence<byte> input)
    {
        // Bound before parsing (STYLE principle 2): nothing past the longest header is ever copied.
        var bounded = input.Length > MaxLength ? input.Slice(0, MaxLength) : input;
        if (bounded.IsSingleSegment)
        {
            return TryParse(bounded.FirstSpan);
        }
        var copy = new byte[bounded.Length];
        bounded.CopyTo(copy);
        return TryParse(copy);
    }

    /// <summary>Parses the header at the start of <paramref name="input"/>; bytes after it are not looked at.</summary>
    public static ProxyParseResult TryParse(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            // Either version: v1 is at least 15 octets, v2 at least 16.
            return ProxyParseResult.More(MinV1Length);
        }
        if (input[0] == V2Signature[0])
        {
            return ParseV2(input);
        }
        if (input[0] == V1Prefix[0])
        {
            return ParseV1(input);
        }
        return ProxyParseResult.Bad("not a PROXY protocol header");
    }

    // ---- Version 1: one line of US-ASCII text (proxy-protocol.txt §2.1) ----

    private static ProxyParseResult ParseV1(ReadOnlySpan<byte> input)
    {
        var window = input.Length > MaxV1Length ? input[..MaxV1Length] : input;
        var prefix = Math.Min(window.Length, V1Prefix.Length);
        if (!window[..prefix].SequenceEqual(V1Prefix[..prefix]))
        {
            return ProxyParseResult.Bad("not a PROXY protocol header");
        }
        var lf = window.IndexOf((byte)'\n');
        if (lf < 0)
        {
            // §2.1: "If the CRLF sequence is not found in the first 107 characters, the receiver
            // should declare the line invalid." A CR may only stand right before the LF.
            var cr = window.IndexOf((byte)'\r');
            if (cr >= 0 && cr != window.Length - 1)
            {
                return ProxyParseResult.Bad("v1: CR without LF");
            }
            if (window.Length >= MaxV1Length)
            {
                return ProxyParseResult.Bad($"v1: no CRLF within {MaxV1Length} octets");
            }
            return ProxyParseResult.More(Math.Max(1, MinV1Length - window.Length));
        }
        // §2.1: a lone LF (or CR) must not be taken for the line end.
        if (lf == 0 || window[lf - 1] != '\r')
        {
            return ProxyParseResult.Bad("v1: line ends in a bare LF");
        }
        var line = window[..(lf - 1)];
        if (line.IndexOf((byte)'\r') >= 0)
        {
            return ProxyParseResult.Bad("v1: bare CR in the line");
        }
        var length = lf + 1;
        if (line.Length < V1Prefix.Length)
        {
            return ProxyParseResult.Bad("not a PROXY protocol header");
        }
        var rest = line[V1Prefix.Length..];
        if (rest.StartsWith("UNKNOWN"u8) && (rest.Length == 7 || rest[7] == ' '))
        {
            // §2.1: for UNKNOWN the receiver ignores whatever stands before the CRLF and uses the
            // connection's own endpoints.
            return ProxyParseResult.Done(new ProxyHeader(1, ProxyCommand.Proxy, null, null), length);
        }
        bool v6;
        if (rest.StartsWith("TCP4 "u8))
        {
            v6 = false;
        }
        else if (rest.StartsWith("TCP6 "u8))
        {
            v6 = true;
        }
        else
        {
            return ProxyParseResult.Bad("v1: the protocol is not TCP4, TCP6 or UNKNOWN");
        }
        rest = rest[5..];
        // Exactly four fields, each separated by exactly one space.
        Span<Range> fields = stackalloc Range[4];
        if (Split(rest, (byte)' ', fields) != 4)
        {
            return ProxyParseResult.Bad("v1: expected source, destination, source port and destination port");
        }
        var family = v6 ? "IPv6" : "IPv4";
        if (!TryParseV1Address(rest[fields[0]], v6, out var source))
        {
            return ProxyParseResult.Bad($"v1: the source is not an {family} address");
        }
        if (!TryParseV1Address(rest[fields[1]], v6, out var destination))
        {
            return ProxyParseResult.Bad($"v1: the destination is not an {family} address");
        }
        if (!TryParsePort(rest[fields[2]], out var sourcePort))
        {
            return ProxyParseResult.Bad("v1: the source port is not a number in 0-65535");
        }
        if (!TryParsePort(rest[fields[3]], out var destinationPort))
        {
            return ProxyParseResult.Bad("v1: the destination port is not a number in 0-65535");
        }
        return ProxyParseResult.Done(new ProxyHeader(1, ProxyCommand.Proxy, new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort)), length);
    }

    private static bool TryParseV1Address(ReadOnlySpan<byte> text, bool v6, out IPAddress address)
    {
        address = IPAddress.None;
        return v6 ? TryParseIpv6(text, out address) : TryParseIpv4(text, out address);
    }

    /// <summary>
    /// §2.1: exactly four decimal numbers 0-255 separated by single dots, no leading zeros (which
    /// some parsers read as octal). Written out because IPAddress.Parse also takes "127.1" and "0x7f.0.0.1".
    /// </summary>
    private static bool TryParseIpv4(ReadOnlySpan<byte> text, out IPAddress address)
    {
        address = IPAddress.None;
        Span<byte> octets = stackalloc byte[4];
        Span<Range> parts = stackalloc Range[4];
        if (Split(text, (byte)'.', parts) != 4)
        {
            return false;
        }
        for (var i = 0; i < 4; i++)
        {
            if (!TryParseDecimal(text[parts[i]], 3, 255, out var value))
            {
                return false;
            }
            octets[i] = (byte)value;
        }
        address = new IPAddress(octets);
        return true;
    }

    /// <summary>
    /// §2.1: groups of hex digits separated by colons, one "::" at most, 128 bits in all. The
    /// dotted tail of an IPv4-mapped address ("::ffff:192.0.2.1") is what inet_ntop writes and what
    /// HAProxy sends for an IPv4 client on an IPv6 path, so it is accepted too. No zone ("%eth0"),
    /// no brackets.
    /// </summary>
    private static bool TryParseIpv6(ReadOnlySpan<byte> text, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.Length is < 2 or > 45 || text.IndexOf((byte)':') < 0)
        {
            return false;
        }
        foreach (var b in text)
        {
            if (!(char.IsAsciiHexDigit((char)b) || b == ':' || b == '.'))
            {
                return false;
            }
        }
        Span<char> chars = stackalloc char[text.Length];
        for (var i = 0; i < text.Length; i++)
        {
            chars[i] = (char)text[i];
        }
        if (!IPAddress.TryParse(chars, out var parsed) || parsed.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return false;
        }
        var dot = text.IndexOf((byte)'.');
        if (dot >= 0 && !TryParseIpv4(text[(text.LastIndexOf((byte)':') + 1)..], out _))
        {
            // The dotted tail obeys the IPv4 rules (no leading zeros).
            return false;
        }
        address = parsed;
        return true;
    }

    /// <summary>Cuts <paramref name="text"/> at each <paramref name="separator"/>; -1 when there are more pieces than <paramref name="pieces"/> holds.</summary>
    private static int Split(ReadOnlySpan<byte> text, byte separator, Span<Range> pieces)
    {
        var count = 0;
        var start = 0;
        while (true)
        {
            if (count == pieces.Length)
            {
                return -1;
            }
            var next = text[start..].IndexOf(separator);
            if (next < 0)
            {
                pieces[count++] = start..text.Length;
                return count;
            }
            pieces[count++] = start..(start + next);
            start += next + 1;
        }
    }

    /// <summary>§2.1: a decimal port 0-65535 without leading zeros.</summary>
    private static bool TryParsePort(ReadOnlySpan<byte> text, out int port) => TryParseDecimal(text, 5, 65535, out port);

    private static bool TryParseDecimal(ReadOnlySpan<byte> text, int maxDigits, int max, out int value)
    {
        value = 0;
        if (text.IsEmpty || text.Length > maxDigits || (text.Length > 1 && text[0] == '0'))
        {
            return false;
        }
        foreach (var b in text)
        {
            if (b is < (byte)'0' or > (byte)'9')
            {
                return false;
            }
            value = (value * 10) + (b - '0');
        }
        return value <= max;
    }

    // ---- Version 2: binary (proxy-protocol.txt §2.2) ----

    private static ProxyParseResult ParseV2(ReadOnlySpan<byte> input)
    {
        var signature = Math.Min(input.Length, V2Signature.Length);
        if (!input[..signature].SequenceEqual(V2Signature[..signature]))
        {
            return ProxyParseResult.Bad("not a PROXY protocol header");
        }
        if (input.Length > V2Signature.Length && input[12] >> 4 != 2)
        {
            return ProxyParseResult.Bad($"v2: unsupported version {input[12] >> 4}");
        }
        if (input.Length > V2Signature.Length && (input[12] & 0x0F) > 1)
        {
            // §2.2: "Receivers must drop connections presenting unexpected values here."
            return ProxyParseResult.Bad($"v2: unknown command 0x{input[12] & 0x0F:x}");
        }
        if (input.Length < V2FixedLength)
        {
            return ProxyParseResult.More(V2FixedLength - input.Length);
        }
        var command = (input[12] & 0x0F) == 0 ? ProxyCommand.Local : ProxyCommand.Proxy;
        var familyAndTransport = input[13];
        int blockLength = BinaryPrimitives.ReadUInt16BigEndian(input[14..16]);
        if (blockLength > MaxV2AddressBlock)
        {
            return ProxyParseResult.Bad($"v2: address block of {blockLength} octets (at most {MaxV2AddressBlock})");
        }
        var length = V2FixedLength + blockLength;
        // Address block (and TLVs) only once it is whole (§2.2: no partial parsing).
        if (input.Length < length)
        {
            return ProxyParseResult.More(length - input.Length);
        }
        var block = input[V2FixedLength..length];
        IPEndPoint? source = null, destination = null;
        int addressesLength;
        if (command == ProxyCommand.Local)
        {
            // §2.2: for LOCAL the receiver "must use the real connection endpoints and discard the
            // protocol block including the family which is ignored". The length is still honoured.
            addressesLength = 0;
        }
        else
        {
            switch (familyAndTransport)
            {
                case 0x00:
                    // AF_UNSPEC: the proxy could not tell; the connection's own endpoints stand.
                    addressesLength = 0;
                    break;
                case 0x11:
                    if (block.Length < Ipv4Block)
                    {
                        return ProxyParseResult.Bad($"v2: TCP over IPv4 needs {Ipv4Block} address octets, the block has {block.Length}");
                    }
                    source = new IPEndPoint(new IPAddress(block[0..4]), BinaryPrimitives.ReadUInt16BigEndian(block[8..10]));
                    destination = new IPEndPoint(new IPAddress(block[4..8]), BinaryPrimitives.ReadUInt16BigEndian(block[10..12]));
                    addressesLength = Ipv4Block;
                    break;
                case 0x21:
                    if (block.Length < Ipv6Block)
                    {
                        return ProxyParseResult.Bad($"v2: TCP over IPv6 needs {Ipv6Block} address octets, the block has {block.Length}");
                    }
                    source = new IPEndPoint(new IPAddress(block[0..16]), BinaryPrimitives.ReadUInt16BigEndian(block[32..34]));
                    destination = new IPEndPoint(new IPAddress(block[16..32]), BinaryPrimitives.ReadUInt16BigEndian(block[34..36]));
                    addressesLength = Ipv6Block;
                    break;
                default:
                    // UDP and UNIX sockets cannot carry SMTP to us; other values are invalid (§2.2).
                    return ProxyParseResult.Bad($"v2: unsupported family and transport 0x{familyAndTransport:x2} (only TCP over IPv4 or IPv6)");
            }
        }
        var tlvError = CheckTlvs(input[..length], addressesLength);
        if (tlvError is not null)
        {
            return ProxyParseResult.Bad(tlvError);
        }
        return ProxyParseResult.Done(new ProxyHeader(2, command, source, destination), length);
    }

    /// <summary>
    /// §2.2: what follows the addresses is a list of TLVs (type, 16-bit length, value), which must
    /// fill the block exactly. Types Postern has no use for are skipped; a CRC32C (§2.2.3) is
    /// checked, since a receiver that supports it must.
    /// </summary>
    private static string? CheckTlvs(ReadOnlySpan<byte> header, int addressesLength)
    {
        if (addressesLength == 0)
        {
            // LOCAL or AF_UNSPEC: the block's layout is unknown, so it is skipped whole (§2.2:
            // "Receivers MUST always consider this field to skip the appropriate number of bytes").
            return null;
        }
        var tlvs = header[(V2FixedLength + addressesLength)..];
        var offset = 0;
        while (offset < tlvs.Length)
        {
            if (tlvs.Length - offset < 3)
            {
                return "v2: truncated TLV";
            }
            var type = tlvs[offset];
            int valueLength = BinaryPrimitives.ReadUInt16BigEndian(tlvs.Slice(offset + 1, 2));
            if (tlvs.Length - offset - 3 < valueLength)
            {
                return $"v2: TLV 0x{type:x2} of {valueLength} octets overruns the header";
            }
            if (type == TlvCrc32C)
            {
                if (valueLength != 4)
                {
                    return "v2: CRC32C TLV is not 4 octets";
                }
                var at = V2FixedLength + addressesLength + offset + 3;
                var expected = BinaryPrimitives.ReadUInt32BigEndian(header.Slice(at, 4));
                if (Crc32C(header, at) != expected)
                {
                    return "v2: CRC32C checksum mismatch";
                }
            }
            offset += 3 + valueLength;
        }
        return null;
    }

    /// <summary>CRC32C (RFC 4960 Appendix B) of the whole header with the 4 checksum octets at <paramref name="zeroAt"/> taken as zero (§2.2.3).</summary>
    internal static uint Crc32C(ReadOnlySpan<byte> header, int zeroAt)
    {
        var crc = 0xFFFFFFFFu;
        for (var i = 0; i < header.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, i >= zeroAt && i < zeroAt + 4 ? (byte)0 : header[i]);
        }
        return ~crc;
    }
}
