using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// What the receiving side decided about a message travels in its envelope: local delivery puts the
/// Authentication-Results field on top of the message, and a folder (Junk, for DMARC quarantine)
/// instead of the inbox.
/// </summary>
public sealed class LocalDeliveryAddsAuthenticationResults
{
    [Theory]
    [InlineData(null)]
    [InlineData("Junk")]
    public async Task TheFieldIsOnTopAndTheFolderIsUsed(string? folder)
    {
        const string results = "Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=origin.test\r\n";
        var dir = TestServer.NewDataDir();
        await Spooled.IntoAsync(dir, 1, _ => (new Envelope
        {
            From = "app@origin.test",
            Recipients = [new EnvelopeRecipient { Address = "alice@example.test", Local = true }],
            AuthenticationResults = results,
            Folder = folder,
        }, "Received: from x\r\nSubject: results\r\n\r\nbody\r\n"));
        await using var server = await TestServer.StartOnAsync(dir);
        var deadline = Environment.TickCount64 + 10_000;
        while (server.Delivered("alice@example.test", folder).Length == 0 && Environment.TickCount64 < deadline)
        {
            await Task.Delay(20);
        }
        var file = Assert.Single(server.Delivered("alice@example.test", folder));
        var text = File.ReadAllText(file);
        Assert.Equal("Return-Path: <app@origin.test>\r\nDelivered-To: alice@example.test\r\n" + results + "Received: from x\r\nSubject: results\r\n\r\nbody\r\n", text);
        if (folder is not null)
        {
            Assert.Empty(server.Delivered("alice@example.test"));
        }
    }
}
