using System.Buffers;
using System.Text;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests.Parsing;

public sealed class CommandLineLimits
{
    private static (LineStatus, string?) Read(string s, int max = 512)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(s)));
        var status = LineReader.TryRead(ref reader, max, out var line);
        return (status, status == LineStatus.Line ? Encoding.Latin1.GetString(line) : null);
    }

    // RFC 5321 §4.5.3.1.4: 512 octets including CRLF.
    [Theory]
    [InlineData(510, LineStatus.Line)]
    [InlineData(511, LineStatus.TooLong)]
    [InlineData(509, LineStatus.Line)]
    public void CommandLineLimitIs512WithCrlf(int textLength, LineStatus expected)
    {
        var (status, _) = Read(new string('x', textLength) + "\r\n");
        Assert.Equal(expected, status);
    }

    [Fact]
    public void LongLineWithoutEndIsTooLongNotIncomplete()
    {
        Assert.Equal(LineStatus.TooLong, Read(new string('x', 600)).Item1);
        Assert.Equal(LineStatus.Incomplete, Read(new string('x', 100)).Item1);
    }

    [Theory]
    [InlineData("NOOP\n")]
    [InlineData("NO\rOP\r\n")]
    [InlineData("NOOP\r\r\n")]
    [InlineData("\n")]
    public void BareCrOrLfIsRefused(string s) => Assert.Equal(LineStatus.BareLineEnding, Read(s).Item1);

    [Fact]
    public void LineComesBackWithoutCrlf() => Assert.Equal(("NOOP"), Read("NOOP\r\nQUIT\r\n").Item2);
}
