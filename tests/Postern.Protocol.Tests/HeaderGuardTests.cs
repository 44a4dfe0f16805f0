using System.Buffers;
using System.Text;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests;

public sealed class HeaderGuardTests
{
    private static (HeaderGuard Guard, byte[] Written) Run(string message, int chunk)
    {
        var inner = new ArrayBufferWriter<byte>();
        var guard = new HeaderGuard(inner);
        var bytes = Encoding.ASCII.GetBytes(message);
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            var part = bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i));
            part.CopyTo(guard.GetSpan(part.Length));
            guard.Advance(part.Length);
        }
        return (guard, inner.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4096)]
    public void CountsFieldsHopsAndSizeAndPassesEveryOctetOn(int chunk)
    {
        const string headers = "Received: from a\r\n\tby b; Sat, 28 Nov 2026 10:00:00 +0000\r\nRECEIVED: from c\r\nX-Received-Not: 1\r\nReceived-SPF: pass\r\nSubject: hi\r\n\r\n";
        const string body = "Received: in the body does not count\r\n\r\nnor: this\r\n";
        var (guard, written) = Run(headers + body, chunk);
        Assert.Equal(Encoding.ASCII.GetBytes(headers + body), written);
        Assert.True(guard.HeaderComplete);
        Assert.Equal(5, guard.Fields);
        Assert.Equal(2, guard.Hops); // Received-SPF and X-Received-Not are other fields
        Assert.Equal(headers.Length, guard.HeaderBytes);
    }

    [Fact]
    public void AMessageWithoutBodyOrBlankLineIsAllHeader()
    {
        var (guard, _) = Run("Subject: only\r\nFrom: a@b\r\n", 2);
        Assert.False(guard.HeaderComplete);
        Assert.Equal(2, guard.Fields);
        var (empty, _) = Run("\r\nbody only\r\n", 1);
        Assert.True(empty.HeaderComplete);
        Assert.Equal(0, empty.Fields);
    }

    [Fact]
    public void ManyFieldsAreCounted()
    {
        var sb = new StringBuilder();
        for (var i = 0; i < 5000; i++)
        {
            sb.Append("Received: hop ").Append(i).Append("\r\n");
        }
        var (guard, _) = Run(sb + "\r\nx\r\n", 777);
        Assert.Equal(5000, guard.Fields);
        Assert.Equal(5000, guard.Hops);
    }
}
