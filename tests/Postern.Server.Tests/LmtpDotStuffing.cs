using System.Text;
using Postern.Server.Delivery;

namespace Postern.Server.Tests;

/// <summary>
/// What LMTP's DATA puts on the wire (RFC 5321 §4.5.2 and §2.3.8): every line ends CRLF, a line
/// starting with "." gets another, the end is CRLF "." CRLF, whatever the pieces the file is read in.
/// </summary>
public sealed class LmtpDotStuffing
{
    [Theory]
    [InlineData("a\r\nb\r\n", "a\r\nb\r\n.\r\n")]
    [InlineData(".\r\n..x\r\n", "..\r\n...x\r\n.\r\n")]
    [InlineData("bare\nlf\n", "bare\r\nlf\r\n.\r\n")]
    [InlineData("bare\rcr\r.dot", "bare\r\ncr\r\n..dot\r\n.\r\n")]
    [InlineData("no end", "no end\r\n.\r\n")]
    [InlineData("ends in cr\r", "ends in cr\r\n.\r\n")]
    [InlineData("", ".\r\n")]
    public async Task EveryLineEndsCrlfAndADotIsDoubled(string input, string wire)
    {
        var bytes = Encoding.ASCII.GetBytes(input);
        // Byte by byte and all at once: the state between pieces must not matter.
        foreach (var size in new[] { 1, 2, Math.Max(1, bytes.Length) })
        {
            using var output = new MemoryStream();
            var stuffer = new LmtpDelivery.DotStuffer(output);
            for (var i = 0; i < bytes.Length; i += size)
            {
                await stuffer.WriteAsync(bytes.AsMemory(i, Math.Min(size, bytes.Length - i)), CancellationToken.None);
            }
            await stuffer.EndAsync(CancellationToken.None);
            Assert.Equal(wire, Encoding.ASCII.GetString(output.ToArray()));
        }
    }

    [Theory]
    [InlineData("unix:/run/dovecot/lmtp", true)]
    [InlineData("/run/dovecot/lmtp", true)]
    [InlineData("127.0.0.1:24", true)]
    [InlineData("[::1]:24", true)]
    [InlineData("mail.example.org:24", true)]
    [InlineData("mail.example.org", false)]
    [InlineData("unix:relative", false)]
    [InlineData("127.0.0.1:0", false)]
    public void EndpointsAreUnixSocketsOrHostAndPort(string text, bool valid) =>
        Assert.Equal(valid, LmtpDelivery.TryParseEndpoint(text, out _));
}
