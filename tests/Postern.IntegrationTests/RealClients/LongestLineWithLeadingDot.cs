using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.RealClients;

/// <summary>
/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF, "not counting the leading
/// dot duplicated for transparency". A 998-octet line that starts with a dot is legal, though on
/// the wire it is 999 octets after the client stuffs it.
/// </summary>
public sealed class LongestLineWithLeadingDot
{
    [Theory]
    [InlineData(Route.MxPlain, "none")]
    [InlineData(Route.SubmissionStartTlsAuth, "PLAIN")]
    public async Task SmtplibDeliversItUnchanged(Route route, string mechanism)
    {
        await using var server = await TestServer.StartAsync();
        var dotLine = "." + TestMessage.LongLine[1..];
        Assert.Equal(998, Encoding.UTF8.GetByteCount(dotLine));
        var message = Encoding.UTF8.GetBytes(
            $"From: <{route.Sender()}>\r\n" +
            $"To: <{route.Recipient()}>\r\n" +
            "Subject: a dot on the longest line\r\n" +
            $"Date: {TestMessage.Date}\r\n" +
            $"Message-ID: {TestMessage.MessageId("smtplib", route)}\r\n" +
            "MIME-Version: 1.0\r\n" +
            "Content-Type: text/plain; charset=utf-8\r\n" +
            "Content-Transfer-Encoding: 8bit\r\n" +
            "\r\n" +
            dotLine + "\r\n" +
            "The line above is 998 octets and starts with a dot.\r\n");

        var run = await SmtplibSendsOnEveryListener.SendAsync(server, route, mechanism, message);

        Assert.True(run.ExitCode == 0, run.All);
        var delivered = Assert.Single(await server.WaitForDeliveryAsync(route.Recipient()));
        Assert.Equal(Encoding.Latin1.GetString(message), Encoding.Latin1.GetString(TestServer.BodyAfterTrace(delivered)));
    }
}
