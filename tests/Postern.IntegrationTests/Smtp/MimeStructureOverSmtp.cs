using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>Issue 12, item 1: a MIME bomb is refused as it streams in (554 5.6.0), never parsed whole.</summary>
public sealed class MimeStructureOverSmtp
{
    [Fact]
    public async Task AMessageOfAMillionEmptyPartsIsRefusedAndTheSessionGoesOn()
    {
        await using var server = await TestServer.StartAsync();
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<x@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        var bomb = new StringBuilder("From: x@remote.example\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
        for (var i = 0; i < 200_000; i++)
        {
            bomb.Append("--b\r\n\r\n");
        }
        bomb.Append("--b--\r\n.");
        var reply = await c.CommandAsync(bomb.ToString(), 554);
        Assert.Contains("5.6.0", reply, StringComparison.Ordinal);
        Assert.Contains("MIME parts", reply, StringComparison.Ordinal);
        await server.WaitForLogAsync("reason=mime_structure");
        // The dialogue is in step: the next message is taken.
        await c.CommandAsync("MAIL FROM:<x@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        await c.CommandAsync("From: x@remote.example\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\none\r\n--b--\r\n.", 250);
    }
}
