using System.Buffers;
using System.Text;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests.Parsing;

public sealed class DataReaderRules
{
    private static (DataStatus Status, string Content, long Consumed, DataReader Reader) Read(string input, long maxSize = 1_000_000)
    {
        var reader = new DataReader(maxSize);
        var output = new ArrayBufferWriter<byte>();
        var seq = new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(input));
        var status = reader.Read(seq, output, out var pos);
        return (status, Encoding.Latin1.GetString(output.WrittenSpan), seq.Slice(0, pos).Length, reader);
    }

    [Fact]
    public void LeadingDotsAreUnstuffed()
    {
        var r = Read("..one\r\n...two\r\n.x\r\nplain.dot\r\n.\r\nNEXT");
        Assert.Equal(DataStatus.Complete, r.Status);
        Assert.Equal(".one\r\n..two\r\nx\r\nplain.dot\r\n", r.Content);
        Assert.Equal("..one\r\n...two\r\n.x\r\nplain.dot\r\n.\r\n".Length, r.Consumed);
    }

    [Fact]
    public void EmptyMessageEndsAtOnce()
    {
        var r = Read(".\r\n");
        Assert.Equal(DataStatus.Complete, r.Status);
        Assert.Equal("", r.Content);
    }

    [Fact]
    public void DotInsideLineIsContent()
    {
        var r = Read("a\r\n x.\r\n.\r\n");
        Assert.Equal("a\r\n x.\r\n", r.Content);
    }

    [Fact]
    public void WithoutEndMarkerAsksForMore()
    {
        var r = Read("a\r\nb\r\n");
        Assert.Equal(DataStatus.NeedMore, r.Status);
        Assert.Equal("a\r\nb\r\n", r.Content);
    }

    // RFC 5321 §4.5.3.1.6: 1000 octets including CRLF.
    [Theory]
    [InlineData(997, false)]
    [InlineData(998, false)]
    [InlineData(999, true)]
    public void TextLineLimitIsOneThousandWithCrlf(int textLength, bool tooLong)
    {
        var r = Read(new string('x', textLength) + "\r\n.\r\n");
        Assert.Equal(DataStatus.Complete, r.Status);
        Assert.Equal(tooLong, r.Reader.LineTooLong);
    }

    [Fact]
    public void StuffedDotDoesNotCountTowardsLineLength()
    {
        var r = Read("." + new string('.', 998) + "\r\n.\r\n");
        Assert.False(r.Reader.LineTooLong);
        Assert.Equal(new string('.', 998) + "\r\n", r.Content);
    }

    [Fact]
    public void OversizedMessageIsReadToTheEndButNotKept()
    {
        var r = Read(new string('a', 50) + "\r\n" + new string('b', 50) + "\r\n.\r\nQUIT\r\n", maxSize: 60);
        Assert.Equal(DataStatus.Complete, r.Status);
        Assert.True(r.Reader.TooBig);
        Assert.True(r.Content.Length <= 60);
        Assert.Equal(104 + 3, r.Consumed);
    }

    [Theory]
    [InlineData(59, false)]
    [InlineData(60, false)]
    [InlineData(61, true)]
    public void SizeLimitAtTheBoundary(int size, bool tooBig)
    {
        var r = Read(new string('a', size - 2) + "\r\n.\r\n", maxSize: 60);
        Assert.Equal(tooBig, r.Reader.TooBig);
    }

    [Fact]
    public void NulIsFlagged()
    {
        var r = Read("a\0b\r\n.\r\n");
        Assert.Equal(DataStatus.Complete, r.Status);
        Assert.True(r.Reader.HasNul);
    }

    [Fact]
    public void EightBitIsKeptAsIs()
    {
        var bytes = Encoding.UTF8.GetBytes("Grüße 日本語\r\n.\r\n");
        var reader = new DataReader(1000);
        var output = new ArrayBufferWriter<byte>();
        Assert.Equal(DataStatus.Complete, reader.Read(new ReadOnlySequence<byte>(bytes), output, out _));
        Assert.Equal(Encoding.UTF8.GetBytes("Grüße 日本語\r\n"), output.WrittenSpan.ToArray());
        Assert.True(reader.HasEightBit);
    }

    [Fact]
    public void ByteByByteFeedingGivesTheSameResult()
    {
        var input = Encoding.Latin1.GetBytes("..a\r\nb\r\n.\r\n");
        var reader = new DataReader(1000);
        var output = new ArrayBufferWriter<byte>();
        var status = DataStatus.NeedMore;
        var i = 0;
        for (; i < input.Length && status == DataStatus.NeedMore; i++)
        {
            status = reader.Read(new ReadOnlySequence<byte>(input, i, 1), output, out _);
        }
        Assert.Equal(DataStatus.Complete, status);
        Assert.Equal(input.Length, i);
        Assert.Equal(".a\r\nb\r\n", Encoding.Latin1.GetString(output.WrittenSpan));
    }
}
