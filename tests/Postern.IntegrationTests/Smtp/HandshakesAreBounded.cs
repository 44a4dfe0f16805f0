using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 (review finding): a client that stalls in the middle of a TLS handshake or of an AUTH
/// exchange held a submission slot for Limits.CommandTimeout each time, and could not be shed. Now
/// the whole handshake, and all the lines of one AUTH exchange, have Limits.HandshakeTimeout, and a
/// stalled one counts as idle since it began. On an injected clock.
/// </summary>
public sealed class HandshakesAreBounded
{
    private static readonly TimeSpan Handshake = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AStalledTlsHandshakeOnPort465IsClosedAfterTheHandshakeTimeout()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.HandshakeTimeout = Handshake, time: time);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, server.SubmissionsPort);
        var stream = tcp.GetStream();
        await server.WaitForLogAsync("event=connect", "listener=submissions");
        var read = stream.ReadAsync(new byte[16]).AsTask(); // no ClientHello is ever sent
        time.Advance(Handshake - TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        Assert.False(read.IsCompleted, "closed before the handshake timeout");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0, await read.WaitAsync(TimeSpan.FromSeconds(10)));
        await server.WaitForLogAsync("event=tls_failed", "Limits.HandshakeTimeout");
        await server.WaitForLogAsync("event=disconnect", "reason=\"tls handshake failed\"");
    }

    [Fact]
    public async Task AStalledAuthExchangeGetsOneDeadlineForAllItsLines()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.HandshakeTimeout = Handshake, time: time);
        await using var c = await RawSmtp.OpenAsync(server.SubmissionPort);
        await c.StartTlsAsync();
        await c.CommandAsync("EHLO client.example", 250);
        await c.CommandAsync("AUTH LOGIN", 334);
        time.Advance(TimeSpan.FromSeconds(20));
        // The user name in time: the password line has what is left of the same 30 s, not 30 s more.
        await c.CommandAsync(Convert.ToBase64String("alice@example.test"u8.ToArray()), 334);
        var reply = c.ReadReplyAsync();
        time.Advance(TimeSpan.FromSeconds(9));
        await Task.Delay(100);
        Assert.False(reply.IsCompleted, "closed before the exchange's deadline");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.StartsWith("421 4.4.2", await reply, StringComparison.Ordinal);
        Assert.True(await c.IsClosedAsync());
        await server.WaitForLogAsync("event=disconnect", "reason=timeout");
    }

    [Fact]
    public async Task AFullSubmissionListenerShedsAStalledAuthExchange()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.HandshakeTimeout = TimeSpan.FromMinutes(5); // the stall itself would last
            o.Limits.MaxConnectionsSubmission = 2;
        }, time: time);
        await using var stalled = await RawSmtp.OpenAsync(server.SubmissionPort, from: IPAddress.Parse("127.0.0.160"));
        await stalled.StartTlsAsync();
        await stalled.CommandAsync("EHLO client.example", 250);
        await stalled.CommandAsync("AUTH LOGIN", 334);
        time.Advance(TimeSpan.FromSeconds(5));
        await using var idle = await RawSmtp.OpenAsync(server.SubmissionPort, from: IPAddress.Parse("127.0.0.161"));
        time.Advance(TimeSpan.FromSeconds(1));
        // Full: the newcomer gets in, and the exchange stalled longest (not the newer idle session) makes room.
        await using var newcomer = await RawSmtp.OpenAsync(server.SubmissionPort, from: IPAddress.Parse("127.0.0.162"));
        Assert.StartsWith("421 4.7.0", await stalled.ReadReplyAsync(), StringComparison.Ordinal);
        await server.WaitForLogAsync("event=connection_shed", "ip=127.0.0.160");
        Assert.StartsWith("250", await idle.CommandAsync("NOOP"), StringComparison.Ordinal);
    }
}
