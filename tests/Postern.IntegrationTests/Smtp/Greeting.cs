using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

public sealed class Greeting
{
    [Fact]
    public async Task MxListenerGreetsAndListsExtensions()
    {
        await using var server = await TestServer.StartAsync();
        await using var c = await RawSmtp.ConnectAsync(server.MxPort);
        var banner = await c.ExpectAsync(220);
        Assert.Equal("220 mx.example.test ESMTP Postern", banner);
        var ehlo = await c.CommandAsync("EHLO client.example", 250);
        foreach (var ext in new[] { "PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "STARTTLS", "CHUNKING", "DSN" })
        {
            Assert.Contains(ext, ehlo);
        }
        Assert.DoesNotContain("AUTH", ehlo);
    }
}
