using System.Buffers;
using System.Text;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests;

public sealed class HeaderFieldFilterTests
{
    private static (string Out, int Dropped) Run(string message, int chunk)
    {
        var inner = new ArrayBufferWriter<byte>();
        var filter = new HeaderFieldFilter(inner, "Authentication-Results",
            field => Encoding.ASCII.GetString(field.Span).Contains("mx.example.com;", StringComparison.OrdinalIgnoreCase));
        var bytes = Encoding.ASCII.GetBytes(message);
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            var part = bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i));
            part.CopyTo(filter.GetSpan(part.Length));
            filter.Advance(part.Length);
        }
        filter.Complete();
        return (Encoding.ASCII.GetString(inner.WrittenSpan), filter.Dropped);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(65536)]
    public void OnlyTheChosenFieldsGoAndEverythingElseIsUntouched(int chunk)
    {
        const string input =
            "Received: from a\r\n\tby b\r\n" +
            "Authentication-Results: mx.example.com;\r\n\tspf=pass smtp.mailfrom=forged.example\r\n" +
            "authentication-results : other.example; dkim=pass\r\n" +
            "Authentication-Results-Original: mx.example.com; none\r\n" +
            "AUTHENTICATION-RESULTS: MX.EXAMPLE.COM; dmarc=pass\r\n" +
            "Subject: hi\r\n" +
            "\r\n" +
            "Authentication-Results: mx.example.com; in the body, kept\r\n";
        var (output, dropped) = Run(input, chunk);
        Assert.Equal(2, dropped);
        Assert.Equal(
            "Received: from a\r\n\tby b\r\n" +
            "authentication-results : other.example; dkim=pass\r\n" +
            "Authentication-Results-Original: mx.example.com; none\r\n" +
            "Subject: hi\r\n" +
            "\r\n" +
            "Authentication-Results: mx.example.com; in the body, kept\r\n", output);
    }

    [Fact]
    public void AMessageThatEndsInsideAHeldFieldIsDecidedAtTheEnd()
    {
        Assert.Equal(("Subject: x\r\n", 1), Run("Subject: x\r\nAuthentication-Results: mx.example.com; none\r\n", 3));
        Assert.Equal(("Subject: x\r\nAuthentication-Results: other.example; none", 0), Run("Subject: x\r\nAuthentication-Results: other.example; none", 3));
    }

    [Fact]
    public void AHugeFieldIsLetThrough()
    {
        var huge = "Authentication-Results: mx.example.com; " + new string('x', HeaderFieldFilter.MaxHeld + 10) + "\r\n\r\nbody\r\n";
        Assert.Equal((huge, 0), Run(huge, 4096));
    }
}
