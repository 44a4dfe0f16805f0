using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Text;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests;

/// <summary>Builds PROXY protocol headers for the tests (HAProxy's proxy-protocol.txt §2.1 and §2.2).</summary>
internal static class ProxyBytes
{
    public static readonly byte[] Signature = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    public static byte[] Ascii(string s) => Encoding.Latin1.GetBytes(s);

    /// <summary>A v2 header: signature, version and command, family and transport, length, then the block.</summary>
    public static byte[] V2(byte versionCommand, byte family, params byte[][] block)
    {
        var body = block.SelectMany(b => b).ToArray();
        var header = new byte[16 + body.Length];
        Signature.CopyTo(header, 0);
        header[12] = versionCommand;
        header[13] = family;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(14), (ushort)body.Length);
        body.CopyTo(header, 16);
        return header;
    }

    /// <summary>Source address, destination address, source port, destination port, in network order.</summary>
    public static byte[] Addresses(string source, string destination, ushort sourcePort, ushort destinationPort)
    {
        var s = IPAddress.Parse(source).GetAddressBytes();
        var d = IPAddress.Parse(destination).GetAddressBytes();
        var block = new byte[s.Length + d.Length + 4];
        s.CopyTo(block, 0);
        d.CopyTo(block, s.Length);
        BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan(s.Length + d.Length), sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan(s.Length + d.Length + 2), destinationPort);
        return block;
    }

    public static byte[] Tlv(byte type, byte[] value)
    {
        var tlv = new byte[3 + value.Length];
        tlv[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(tlv.AsSpan(1), (ushort)value.Length);
        value.CopyTo(tlv, 3);
        return tlv;
    }

    /// <summary>A TCP4 PROXY header whose last TLV is a CRC32C computed over the whole header (§2.2.3).</summary>
    public static byte[] V2WithCrc(bool corrupt)
    {
        var header = V2(0x21, 0x11, Addresses("192.0.2.1", "198.51.100.2", 40000, 25), Tlv(0x03, new byte[4]));
        var at = header.Length - 4;
        var crc = ProxyHeader.Crc32C(header, at);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(at), corrupt ? crc ^ 1 : crc);
        return header;
    }

    public static ProxyParseResult Parse(byte[] bytes) => ProxyHeader.TryParse(new ReadOnlySequence<byte>(bytes));

    /// <summary>
    /// Feeds <paramref name="stream"/> the way SmtpListener reads a socket: each read asks for at most
    /// Wanted octets and gets at most <paramref name="chunk"/>. Returns the result and the octets read.
    /// </summary>
    public static (ProxyParseResult Result, int Read) Feed(byte[] stream, int chunk)
    {
        var read = 0;
        while (true)
        {
            var result = ProxyHeader.TryParse(stream.AsSpan(0, read));
            if (result.Status != ProxyHeaderStatus.Incomplete)
            {
                return (result, read);
            }
            Assert.True(result.Wanted >= 1, "Incomplete must ask for at least one octet");
            var n = Math.Min(Math.Min(result.Wanted, chunk), stream.Length - read);
            if (n == 0)
            {
                return (result, read);
            }
            read += n;
        }
    }

    /// <summary>The same bytes as a sequence of many segments, cut at the given sizes.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] bytes, int size)
    {
        Segment? first = null, last = null;
        for (var i = 0; i < bytes.Length; i += size)
        {
            var piece = bytes.AsMemory(i, Math.Min(size, bytes.Length - i));
            last = last is null ? (first = new Segment(piece, 0)) : last.Append(piece);
        }
        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}

/// <summary>Version 1, the text line (proxy-protocol.txt §2.1).</summary>
public sealed class ProxyV1Headers
{
    [Fact]
    public void Tcp4NamesTheClientAndTheAddressItReached()
    {
        var line = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";
        var r = ProxyBytes.Parse(ProxyBytes.Ascii(line));
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(line.Length, r.Length);
        Assert.Equal(new ProxyHeader(1, ProxyCommand.Proxy, IPEndPoint.Parse("192.0.2.1:56324"), IPEndPoint.Parse("198.51.100.2:25")), r.Header);
    }

    [Theory]
    [InlineData("PROXY TCP6 2001:db8::1 2001:db8::2 1234 25\r\n", "2001:db8::1", 1234)]
    [InlineData("PROXY TCP6 ::1 ::1 0 65535\r\n", "::1", 0)]
    [InlineData("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:127.0.0.1 40000 25\r\n", "::ffff:192.0.2.1", 40000)]
    [InlineData("PROXY TCP6 FFFF:ffff:FFFF:ffff:FFFF:ffff:FFFF:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)]
    public void Tcp6InEveryWrittenForm(string line, string source, int port)
    {
        var r = ProxyBytes.Parse(ProxyBytes.Ascii(line));
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(line.Length, r.Length);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(source), port), r.Header!.Source);
    }

    [Fact]
    public void TheLongestTcp6LineIs104Octets()
    {
        var line = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        Assert.Equal(104, line.Length);
        Assert.Equal(ProxyHeaderStatus.Complete, ProxyBytes.Parse(ProxyBytes.Ascii(line)).Status);
    }

    [Theory]
    [InlineData("PROXY UNKNOWN\r\n")]
    [InlineData("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")]
    [InlineData("PROXY UNKNOWN anything at all, ignored\r\n")]
    public void UnknownKeepsTheConnectionsOwnAddress(string line)
    {
        // §2.1: for UNKNOWN "the receiver must ignore anything presented before the CRLF".
        var r = ProxyBytes.Parse(ProxyBytes.Ascii(line));
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(line.Length, r.Length);
        Assert.Equal(ProxyCommand.Proxy, r.Header!.Command);
        Assert.Null(r.Header.Source);
        Assert.Null(r.Header.Destination);
    }

    // §2.1: 107 octets, CRLF included, is the longest line; limit−1, limit, limit+1.
    [Theory]
    [InlineData(106, ProxyHeaderStatus.Complete)]
    [InlineData(107, ProxyHeaderStatus.Complete)]
    [InlineData(108, ProxyHeaderStatus.Invalid)]
    public void LineLimitIs107OctetsWithCrlf(int length, ProxyHeaderStatus expected)
    {
        var line = "PROXY UNKNOWN " + new string('f', length - 16) + "\r\n";
        Assert.Equal(length, line.Length);
        Assert.Equal(expected, ProxyBytes.Parse(ProxyBytes.Ascii(line)).Status);
    }

    [Fact]
    public void NoCrlfWithin107OctetsIsInvalidNotIncomplete()
    {
        Assert.Equal(ProxyHeaderStatus.Invalid, ProxyBytes.Parse(ProxyBytes.Ascii("PROXY UNKNOWN " + new string('f', 93))).Status);
        Assert.Equal(ProxyHeaderStatus.Incomplete, ProxyBytes.Parse(ProxyBytes.Ascii("PROXY UNKNOWN " + new string('f', 92))).Status);
    }

    [Fact]
    public void WhatFollowsTheLineIsLeftForSmtp()
    {
        var r = ProxyBytes.Parse(ProxyBytes.Ascii("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO client.example\r\n"));
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(44, r.Length);
    }
}

/// <summary>Version 2, the binary header (proxy-protocol.txt §2.2).</summary>
public sealed class ProxyV2Headers
{
    [Fact]
    public void Tcp4()
    {
        var bytes = ProxyBytes.V2(0x21, 0x11, ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 56324, 25));
        var r = ProxyBytes.Parse(bytes);
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(28, r.Length);
        Assert.Equal(new ProxyHeader(2, ProxyCommand.Proxy, IPEndPoint.Parse("192.0.2.1:56324"), IPEndPoint.Parse("198.51.100.2:25")), r.Header);
    }

    [Fact]
    public void Tcp6()
    {
        var bytes = ProxyBytes.V2(0x21, 0x21, ProxyBytes.Addresses("2001:db8::1", "2001:db8::2", 65535, 0));
        var r = ProxyBytes.Parse(bytes);
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(52, r.Length);
        Assert.Equal(IPEndPoint.Parse("[2001:db8::1]:65535"), r.Header!.Source);
        Assert.Equal(IPEndPoint.Parse("[2001:db8::2]:0"), r.Header.Destination);
    }

    [Fact]
    public void LocalWithoutAddressesKeepsTheConnectionsOwn()
    {
        var r = ProxyBytes.Parse(ProxyBytes.V2(0x20, 0x00));
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(16, r.Length);
        Assert.Equal(new ProxyHeader(2, ProxyCommand.Local, null, null), r.Header);
    }

    [Fact]
    public void LocalSkipsWhateverBlockItCarries()
    {
        // §2.2: "Receivers MUST always consider this field to skip the appropriate number of bytes
        // and must not assume zero is presented for LOCAL connections."
        var bytes = ProxyBytes.V2(0x20, 0x11, ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 1, 2));
        var r = ProxyBytes.Parse(bytes.Concat(ProxyBytes.Ascii("QUIT\r\n")).ToArray());
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(28, r.Length);
        Assert.Equal(ProxyCommand.Local, r.Header!.Command);
        Assert.Null(r.Header.Source);
    }

    [Fact]
    public void UnspecifiedFamilyKeepsTheConnectionsOwn()
    {
        var r = ProxyBytes.Parse(ProxyBytes.V2(0x21, 0x00, new byte[7]));
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(23, r.Length);
        Assert.Equal(new ProxyHeader(2, ProxyCommand.Proxy, null, null), r.Header);
    }

    [Fact]
    public void TlvsAreSkipped()
    {
        var ssl = new byte[] { 0x01, 0, 0, 0, 0 }.Concat(ProxyBytes.Tlv(0x21, ProxyBytes.Ascii("TLSv1.3"))).Concat(ProxyBytes.Tlv(0x22, ProxyBytes.Ascii("client.example"))).ToArray();
        var bytes = ProxyBytes.V2(0x21, 0x11, ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 56324, 25),
            ProxyBytes.Tlv(0x01, ProxyBytes.Ascii("smtp")),          // ALPN
            ProxyBytes.Tlv(0x02, ProxyBytes.Ascii("mx.example.test")), // AUTHORITY
            ProxyBytes.Tlv(0x04, []),                              // NOOP, empty
            ProxyBytes.Tlv(0x05, new byte[128]),                   // UNIQUE_ID, the longest
            ProxyBytes.Tlv(0x20, ssl),                             // SSL with sub-TLVs
            ProxyBytes.Tlv(0xEA, [1, 2, 3]),                       // application-specific
            ProxyBytes.Tlv(0xFF, []));                             // reserved for the future
        var r = ProxyBytes.Parse(bytes);
        Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
        Assert.Equal(bytes.Length, r.Length);
        Assert.Equal(IPEndPoint.Parse("192.0.2.1:56324"), r.Header!.Source);
    }

    [Fact]
    public void Crc32CMatchesTheRfc3720Vectors()
    {
        // RFC 3720 §B.4: 32 octets of zeros, and "123456789" (the classic check value).
        Assert.Equal(0x8A9136AAu, ProxyHeader.Crc32C(new byte[32], 32));
        Assert.Equal(0xE3069283u, ProxyHeader.Crc32C(ProxyBytes.Ascii("123456789"), 9));
    }

    [Fact]
    public void ARightChecksumPassesAndAWrongOneIsRefused()
    {
        Assert.Equal(ProxyHeaderStatus.Complete, ProxyBytes.Parse(ProxyBytes.V2WithCrc(corrupt: false)).Status);
        var bad = ProxyBytes.Parse(ProxyBytes.V2WithCrc(corrupt: true));
        Assert.Equal(ProxyHeaderStatus.Invalid, bad.Status);
        Assert.Contains("CRC32C", bad.Error);
    }

    // The address block is bounded: limit, limit+1.
    [Theory]
    [InlineData(ProxyHeader.MaxV2AddressBlock, ProxyHeaderStatus.Complete)]
    [InlineData(ProxyHeader.MaxV2AddressBlock + 1, ProxyHeaderStatus.Invalid)]
    public void AddressBlockIsAtMost2048Octets(int blockLength, ProxyHeaderStatus expected)
    {
        var addresses = ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 1, 2);
        var bytes = ProxyBytes.V2(0x21, 0x11, addresses, ProxyBytes.Tlv(0x04, new byte[blockLength - addresses.Length - 3]));
        Assert.Equal(expected, ProxyBytes.Parse(bytes).Status);
    }

    [Fact]
    public void TooLongIsRefusedFromTheFixedPartAlone()
    {
        // No need to wait for 65535 octets that will be refused anyway.
        var bytes = ProxyBytes.V2(0x21, 0x11)[..14].Concat(new byte[] { 0xFF, 0xFF }).ToArray();
        Assert.Equal(ProxyHeaderStatus.Invalid, ProxyBytes.Parse(bytes).Status);
    }
}

/// <summary>TCP splits a header wherever it likes (proxy-protocol.txt §2): a partial header waits, and no octet past it is read.</summary>
public sealed class ProxyHeadersInPieces
{
    public static TheoryData<string, int> Headers() => new()
    {
        { "v1-tcp4", 44 },
        { "v1-tcp6", 45 },
        { "v1-unknown", 15 },
        { "v2-tcp4", 28 },
        { "v2-tcp6", 52 },
        { "v2-local", 16 },
        { "v2-tlvs", 28 + 3 + 4 + 3 + 16 },
        { "v2-crc", 35 },
    };

    private static byte[] Header(string name) => name switch
    {
        "v1-tcp4" => ProxyBytes.Ascii("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n"),
        "v1-tcp6" => ProxyBytes.Ascii("PROXY TCP6 2001:db8::1 2001:db8::2 56324 25\r\n"),
        "v1-unknown" => ProxyBytes.Ascii("PROXY UNKNOWN\r\n"),
        "v2-tcp4" => ProxyBytes.V2(0x21, 0x11, ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 56324, 25)),
        "v2-tcp6" => ProxyBytes.V2(0x21, 0x21, ProxyBytes.Addresses("2001:db8::1", "2001:db8::2", 56324, 25)),
        "v2-local" => ProxyBytes.V2(0x20, 0x00),
        "v2-tlvs" => ProxyBytes.V2(0x21, 0x11, ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 56324, 25), ProxyBytes.Tlv(0x01, [1, 2, 3, 4]), ProxyBytes.Tlv(0x05, new byte[16])),
        "v2-crc" => ProxyBytes.V2WithCrc(corrupt: false),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Headers))]
    public void ReadPieceByPieceNeverPassesTheEnd(string name, int length)
    {
        // SMTP pipelined right behind the header (a client that talks first) must stay unread.
        var stream = Header(name).Concat(ProxyBytes.Ascii("EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n")).ToArray();
        foreach (var chunk in new[] { 1, 2, 3, 7, 16, 64, 4096 })
        {
            var (result, read) = ProxyBytes.Feed(stream, chunk);
            Assert.Equal(ProxyHeaderStatus.Complete, result.Status);
            Assert.Equal(length, result.Length);
            Assert.Equal(length, read);
        }
    }

    [Theory]
    [MemberData(nameof(Headers))]
    public void EveryProperPrefixIsIncomplete(string name, int length)
    {
        var header = Header(name);
        Assert.Equal(length, header.Length);
        for (var i = 0; i < header.Length; i++)
        {
            var r = ProxyHeader.TryParse(header.AsSpan(0, i));
            Assert.True(r.Status == ProxyHeaderStatus.Incomplete, $"{name}: {i} octets gave {r.Status} ({r.Error})");
            Assert.InRange(r.Wanted, 1, header.Length - i);
        }
    }

    [Theory]
    [MemberData(nameof(Headers))]
    public void ASequenceOfManySegmentsParsesAlike(string name, int length)
    {
        var header = Header(name);
        foreach (var size in new[] { 1, 5, 13 })
        {
            var r = ProxyHeader.TryParse(ProxyBytes.Segmented(header, size));
            Assert.Equal(ProxyHeaderStatus.Complete, r.Status);
            Assert.Equal(length, r.Length);
            Assert.Equal(ProxyBytes.Parse(header).Header, r.Header);
        }
    }
}

/// <summary>§2.1: "Any sequence which does not exactly match the protocol must be discarded and cause the receiver to abort the connection."</summary>
public sealed class MalformedProxyHeaders
{
    [Theory]
    // Not a PROXY header at all: refused from the first octet that differs, without waiting for more.
    [InlineData("E")]
    [InlineData("EHLO client.example\r\n")]
    [InlineData("GET / HTTP/1.1\r\n")]
    [InlineData("\u0016\u0003\u0001\u0002\u0000")]
    [InlineData("proxy TCP4 192.0.2.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXZ")]
    [InlineData("PROXY\r\n")]
    [InlineData("PROXY\tTCP4 192.0.2.1 198.51.100.2 56324 25\r\n")]
    // Line endings: only CRLF ends the line.
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1\r198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\rX")]
    // Protocol names.
    [InlineData("PROXY TCP5 192.0.2.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY tcp4 192.0.2.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY UDP4 192.0.2.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY UNKNOWNX\r\n")]
    [InlineData("PROXY \r\n")]
    [InlineData("PROXY TCP4\r\n")]
    // Fields and separators: exactly four, exactly one space between each.
    [InlineData("PROXY TCP4  192.0.2.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 \r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 7\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2  25\r\n")]
    // Ports: decimal 0-65535, no leading zeros, no signs.
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 99999 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 123456 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 025\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 +25 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 2a 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 0x19 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 smtp\r\n")]
    // IPv4: four numbers 0-255, no leading zeros, nothing else.
    [InlineData("PROXY TCP4 256.0.2.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.999 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1.5 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.02.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 127.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 0x7f.0.0.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1/32 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192..2.1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 2001:db8::1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 ::1 56324 25\r\n")]
    // IPv6: the family must match, 128 bits, one "::" at most, no zone, no brackets.
    [InlineData("PROXY TCP6 192.0.2.1 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 2001:db8::1 198.51.100.2 56324 25\r\n")]
    [InlineData("PROXY TCP6 2001:db8:::1 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 2001::db8::1 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 1:2:3:4:5:6:7:8:9 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 1:2:3:4:5:6:7 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 12345::1 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 2001:db8::g 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 [2001:db8::1] 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 ::ffff:192.0.02.1 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 ::ffff:256.0.2.1 2001:db8::2 56324 25\r\n")]
    [InlineData("PROXY TCP6 : 2001:db8::2 56324 25\r\n")]
    public void V1(string text)
    {
        var r = ProxyBytes.Parse(ProxyBytes.Ascii(text));
        Assert.True(r.Status == ProxyHeaderStatus.Invalid, $"{text.ReplaceLineEndings("|")} gave {r.Status}");
        Assert.False(string.IsNullOrEmpty(r.Error));
        Assert.Null(r.Header);
    }

    [Fact]
    public void V1LongerThan107OctetsWithoutCrlf()
    {
        var r = ProxyBytes.Parse(ProxyBytes.Ascii("PROXY TCP6 " + new string('1', 200)));
        Assert.Equal(ProxyHeaderStatus.Invalid, r.Status);
        Assert.Contains("107", r.Error);
    }

    public static TheoryData<string, byte[]> BadV2()
    {
        var v4 = ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 56324, 25);
        var v6 = ProxyBytes.Addresses("2001:db8::1", "2001:db8::2", 56324, 25);
        var data = new TheoryData<string, byte[]>();
        for (var i = 0; i < 12; i++)
        {
            var bytes = ProxyBytes.V2(0x21, 0x11, v4);
            bytes[i] ^= 0x40;
            data.Add($"signature octet {i}", bytes);
        }
        data.Add("version 1", ProxyBytes.V2(0x11, 0x11, v4));
        data.Add("version 3", ProxyBytes.V2(0x31, 0x11, v4));
        data.Add("version 0", ProxyBytes.V2(0x01, 0x11, v4));
        data.Add("command 2", ProxyBytes.V2(0x22, 0x11, v4));
        data.Add("command 15", ProxyBytes.V2(0x2F, 0x11, v4));
        data.Add("UDP over IPv4", ProxyBytes.V2(0x21, 0x12, v4));
        data.Add("UDP over IPv6", ProxyBytes.V2(0x21, 0x22, v6));
        data.Add("UNIX stream", ProxyBytes.V2(0x21, 0x31, new byte[216]));
        data.Add("UNIX datagram", ProxyBytes.V2(0x21, 0x32, new byte[216]));
        data.Add("family 4", ProxyBytes.V2(0x21, 0x41, v4));
        data.Add("transport 3", ProxyBytes.V2(0x21, 0x13, v4));
        data.Add("IPv4 block too short", ProxyBytes.V2(0x21, 0x11, v4[..11]));
        data.Add("IPv4 block empty", ProxyBytes.V2(0x21, 0x11));
        data.Add("IPv6 block too short", ProxyBytes.V2(0x21, 0x21, v6[..35]));
        data.Add("IPv6 family with IPv4 addresses", ProxyBytes.V2(0x21, 0x21, v4));
        data.Add("one octet after the addresses", ProxyBytes.V2(0x21, 0x11, v4, [0x04]));
        data.Add("two octets after the addresses", ProxyBytes.V2(0x21, 0x11, v4, [0x04, 0x00]));
        data.Add("TLV longer than the block", ProxyBytes.V2(0x21, 0x11, v4, [0x04, 0x00, 0x05, 1, 2, 3, 4]));
        data.Add("TLV overrunning by far", ProxyBytes.V2(0x21, 0x11, v4, [0x02, 0xFF, 0xFF, 1]));
        data.Add("second TLV truncated", ProxyBytes.V2(0x21, 0x11, v4, ProxyBytes.Tlv(0x04, [1]), [0x05, 0x00]));
        data.Add("CRC32C of 3 octets", ProxyBytes.V2(0x21, 0x11, v4, ProxyBytes.Tlv(0x03, [0, 0, 0])));
        data.Add("CRC32C wrong", ProxyBytes.V2WithCrc(corrupt: true));
        return data;
    }

    [Theory]
    [MemberData(nameof(BadV2))]
    public void V2(string what, byte[] bytes)
    {
        var r = ProxyBytes.Parse(bytes);
        Assert.True(r.Status == ProxyHeaderStatus.Invalid, $"{what} gave {r.Status}");
        Assert.False(string.IsNullOrEmpty(r.Error));
    }

    [Fact]
    public void V2TruncatedIsIncompleteUntilTheConnectionCloses()
    {
        // A cut header is not valid, only unfinished: the listener's timeout or the peer's close ends it.
        var bytes = ProxyBytes.V2(0x21, 0x11, ProxyBytes.Addresses("192.0.2.1", "198.51.100.2", 1, 2));
        var r = ProxyHeader.TryParse(bytes.AsSpan(0, 20));
        Assert.Equal(ProxyHeaderStatus.Incomplete, r.Status);
        Assert.Equal(8, r.Wanted);
    }
}
