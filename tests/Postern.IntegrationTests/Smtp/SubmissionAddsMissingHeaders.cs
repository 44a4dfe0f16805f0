using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>RFC 6409 §8: on submission a missing Message-ID and Date are added; on mx nothing is.</summary>
public sealed class SubmissionAddsMissingHeaders
{
    [Fact]
    public async Task MissingMessageIdAndDateAreAddedOnSubmissionOnly()
    {
        await using var server = await TestServer.StartAsync();
        await using (var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
            await c.CommandAsync("RCPT TO:<bob@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: alice@example.test\r\nSubject: bare\r\n\r\nbody\r\n.", 250);
        }
        await using (var c = await RawSmtp.OpenAsync(server.MxPort))
        {
            await c.CommandAsync("MAIL FROM:<x@remote.example>", 250);
            await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: x@remote.example\r\nSubject: bare\r\n\r\nbody\r\n.", 250);
        }
        var submitted = Encoding.UTF8.GetString(TestServer.BodyAfterTrace((await server.WaitForDeliveryAsync("bob@example.test"))[0]));
        Assert.Matches(@"^From: alice@example.test\r\nSubject: bare\r\nMessage-ID: <[0-9A-Z]{12}\.\d+@mx\.example\.test>\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n\r\nbody\r\n$", submitted);
        var relayed = Encoding.UTF8.GetString(TestServer.BodyAfterTrace((await server.WaitForDeliveryAsync("alice@example.test"))[0]));
        Assert.Equal("From: x@remote.example\r\nSubject: bare\r\n\r\nbody\r\n", relayed);
    }

    [Fact]
    public async Task ReceivedHeaderCarriesQueueIdProtocolAndTls()
    {
        await using var server = await TestServer.StartAsync();
        string queued;
        await using (var c = await RawSmtp.OpenAsync(server.SubmissionPort))
        {
            await c.StartTlsAsync();
            await c.CommandAsync("EHLO client.example", 250);
            Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
            await c.CommandAsync("RCPT TO:<bob@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            queued = await c.CommandAsync("Message-ID: <a@b>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nx\r\n.", 250);
        }
        var id = queued.Split(' ')[^1];
        var text = Encoding.UTF8.GetString((await server.WaitForDeliveryAsync("bob@example.test"))[0]);
        Assert.Contains($"Received: from client.example ([127.0.0.1])\r\n\tby mx.example.test (Postern) with ESMTPSA id {id}\r\n\t(version=TLSv1.3 cipher=TLS_", text);
        Assert.Contains("\tfor <bob@example.test>;", text);
        await server.WaitForLogAsync("event=accepted", $"queue_id={id}", "protocol=ESMTPSA", "user=alice@example.test");
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=sent");
    }
}
