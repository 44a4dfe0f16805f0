using System.Net;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Time.Testing;
using MimeKit;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12, "Overload sheds the idle, never the working": each listener role has its own cap, so
/// port 25 full never locks users out of 587; a full listener makes room by shedding its longest
/// idle session (421 4.7.0), of the client with the most sessions, never a session in a
/// transaction; under pressure idle sessions go after 10 s (Postfix's stress mode).
/// </summary>
public sealed class OverloadShedsTheIdle
{
    private static IPAddress Ip(int last) => IPAddress.Parse($"127.0.0.{last}");

    [Fact]
    public async Task PortTwentyFiveFullDoesNotLockUsersOutOfSubmission()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.MaxConnections = 20;
            o.Limits.MaxConnectionsSubmission = 5;
        });
        var idle = new List<RawSmtp>();
        try
        {
            for (var i = 0; i < 20; i++)
            {
                idle.Add(await RawSmtp.OpenAsync(server.MxPort, from: Ip(120 + i % 4)));
            }
            // An authenticated user on 587 (STARTTLS, AUTH) sends as usual.
            using var client = new SmtpClient
            {
                ServerCertificateValidationCallback = (_, _, _, _) => true,
                CheckCertificateRevocation = false,
                LocalDomain = "client.example",
            };
            await client.ConnectAsync("127.0.0.1", server.SubmissionPort, SecureSocketOptions.StartTls);
            await client.AuthenticateAsync("alice@example.test", TestServer.AlicePassword);
            var message = new MimeMessage();
            message.From.Add(MailboxAddress.Parse("alice@example.test"));
            message.To.Add(MailboxAddress.Parse("bob@example.test"));
            message.Subject = "while port 25 is full";
            message.Body = new TextPart("plain") { Text = "still here" };
            Assert.StartsWith("2.0.0", await client.SendAsync(message), StringComparison.Ordinal);
            await client.DisconnectAsync(quit: true);
            await server.WaitForDeliveryAsync("bob@example.test");
        }
        finally
        {
            foreach (var c in idle)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AFullListenerShedsTheLongestIdleSessionOfTheBusiestClientAndNeverAWorkingOne()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.MaxConnections = 5;
            o.Limits.MaxConnectionsPerIp = 10;
        }, time: time);
        // One session in a transaction, opened first (so idle longest, were it idle)...
        await using var working = await RawSmtp.OpenAsync(server.MxPort, from: Ip(130));
        await working.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
        await working.CommandAsync("RCPT TO:<alice@example.test>", 250);
        time.Advance(TimeSpan.FromSeconds(5));
        // ...then idle ones: two from .131 (the busiest client), one each from .132 and .133.
        await using var busiestOldest = await RawSmtp.OpenAsync(server.MxPort, from: Ip(131));
        time.Advance(TimeSpan.FromSeconds(1));
        await using var loneOldest = await RawSmtp.OpenAsync(server.MxPort, from: Ip(132));
        time.Advance(TimeSpan.FromSeconds(1));
        await using var busiestNewer = await RawSmtp.OpenAsync(server.MxPort, from: Ip(131));
        time.Advance(TimeSpan.FromSeconds(1));
        await using var lone = await RawSmtp.OpenAsync(server.MxPort, from: Ip(133));
        time.Advance(TimeSpan.FromSeconds(1));

        // The listener is full: a newcomer gets in, and .131's longest idle session makes room.
        await using var newcomer = await RawSmtp.OpenAsync(server.MxPort, from: Ip(140));
        Assert.StartsWith("421 4.7.0", await busiestOldest.ReadReplyAsync());
        Assert.True(await busiestOldest.IsClosedAsync());
        await server.WaitForLogAsync("event=connection_shed", "ip=127.0.0.131", "reason=\"listener full\"");

        // Full again, every client with one session now: the longest idle goes, then the next.
        await using var second = await RawSmtp.OpenAsync(server.MxPort, from: Ip(141));
        Assert.StartsWith("421 4.7.0", await loneOldest.ReadReplyAsync());
        time.Advance(TimeSpan.FromSeconds(2));
        await using var third = await RawSmtp.OpenAsync(server.MxPort, from: Ip(142));
        Assert.StartsWith("421 4.7.0", await busiestNewer.ReadReplyAsync());

        // The session in its transaction was never touched: it delivers.
        await working.CommandAsync("DATA", 354);
        await working.SendAsync("Subject: kept\r\n\r\nworking, not idle\r\n.\r\n");
        Assert.StartsWith("250", await working.ReadReplyAsync());
        await server.WaitForDeliveryAsync("alice@example.test");
    }

    [Fact]
    public async Task WithNobodyIdleANewcomerIsRefused()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxConnections = 2, time: time);
        await using var a = await RawSmtp.OpenAsync(server.MxPort, from: Ip(150));
        await using var b = await RawSmtp.OpenAsync(server.MxPort, from: Ip(151));
        foreach (var c in new[] { a, b })
        {
            await c.CommandAsync("MAIL FROM:<someone@remote.example>", 250);
        }
        time.Advance(TimeSpan.FromMinutes(1));
        await using var newcomer = await RawSmtp.ConnectAsync(server.MxPort, from: Ip(152));
        Assert.StartsWith("421 4.7.0 Too many connections", await newcomer.ReadReplyAsync());
        Assert.StartsWith("250", await a.CommandAsync("RSET"));
        Assert.StartsWith("250", await b.CommandAsync("RSET"));
    }

    [Fact]
    public async Task UnderPressureIdleSessionsGoAfterTenSeconds()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.MaxConnections = 10;
            o.Limits.MaxConnectionsPerIp = 10;
        }, time: time);
        var idle = new List<RawSmtp>();
        for (var i = 0; i < 9; i++)
        {
            idle.Add(await RawSmtp.OpenAsync(server.MxPort, from: Ip(160)));
        }
        // Nine of ten: under pressure. Idle for 11 s (the plain command timeout is 5 minutes).
        time.Advance(TimeSpan.FromSeconds(11));
        await using var newcomer = await RawSmtp.OpenAsync(server.MxPort, from: Ip(161));
        foreach (var c in idle)
        {
            Assert.StartsWith("421 4.7.0", await c.ReadReplyAsync());
            await c.DisposeAsync();
        }
        await server.WaitForLogAsync("event=connection_shed", "reason=\"idle under pressure\"");
        Assert.StartsWith("250", await newcomer.CommandAsync("NOOP"));
    }
}
