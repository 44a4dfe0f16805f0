using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Postern.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Postern.IntegrationTests.Load;

/// <summary>
/// Issue 4: under load, in one test. While one address floods the server with connections and
/// 2,000 idle connections (each from its own loopback address, 127.1.x.y) sit on it, 20
/// well-behaved clients (127.0.2.1-20) send 1,000 messages: every one arrives, the flood is
/// throttled by the per-address limits, and the server's memory stays bounded.
/// </summary>
public sealed class UnderAttack(ITestOutputHelper output)
{
    private const int Idle = 2000;
    private const int Clients = 20;
    private const int PerClient = 50;

    [Fact]
    public async Task LegitimateMailGetsThroughAFloodAndTwoThousandIdleConnections()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.MaxConnections = Idle + 500;
            o.Limits.MaxConnectionsPerIp = 20;
            o.Limits.MaxConnectionsPerIpPerMinute = 100;
            o.Limits.CommandTimeout = TimeSpan.FromMinutes(2); // the idle ones must last the test
        });
        GC.Collect();
        var before = GC.GetTotalMemory(forceFullCollection: true);

        // 2,000 idle connections, greeted and then silent.
        var idle = new List<TcpClient>();
        try
        {
            for (var i = 0; i < Idle; i++)
            {
                var from = IPAddress.Parse($"127.1.{(i / 250) + 1}.{(i % 250) + 1}");
                var tcp = new TcpClient(new IPEndPoint(from, 0));
                await tcp.ConnectAsync(IPAddress.Loopback, server.MxPort);
                idle.Add(tcp);
            }
            // Wait until the server holds them all.
            await WaitForAsync(() => server.LogLines.Count(l => l.Contains("event=connect", StringComparison.Ordinal)) >= Idle, "the idle connections to be accepted");

            // The flood: one address, connecting as fast as it can, 30 at a time, until the legitimate mail is in.
            using var stopFlood = new CancellationTokenSource();
            var greeted = 0;
            var refused = 0;
            var flooder = IPAddress.Parse("127.0.0.66");
            var flood = Enumerable.Range(0, 30).Select(_ => Task.Run(async () =>
            {
                while (!stopFlood.IsCancellationRequested)
                {
                    try
                    {
                        await using var c = await RawSmtp.ConnectAsync(server.MxPort, from: flooder);
                        var reply = await c.ReadReplyAsync();
                        if (reply.StartsWith("220", StringComparison.Ordinal))
                        {
                            Interlocked.Increment(ref greeted);
                            await c.SendAsync("EHLO flood\r\nMAIL FROM:<spam@flood.example>\r\nRCPT TO:<nobody@example.test>\r\n");
                        }
                        else if (reply.StartsWith("421", StringComparison.Ordinal))
                        {
                            Interlocked.Increment(ref refused);
                        }
                    }
                    catch (Exception e) when (e is IOException or SocketException or TimeoutException or Xunit.Sdk.XunitException)
                    {
                    }
                }
            })).ToList();

            // The well-behaved clients: 20 addresses, 50 messages each, over one connection each.
            var problems = new ConcurrentQueue<string>();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(1, Clients).Select(n => Task.Run(async () =>
            {
                try
                {
                    await using var c = await RawSmtp.OpenAsync(server.MxPort, from: IPAddress.Parse($"127.0.2.{n}"));
                    for (var m = 0; m < PerClient; m++)
                    {
                        await c.CommandAsync($"MAIL FROM:<client{n}@good.example>", 250);
                        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
                        await c.CommandAsync("DATA", 354);
                        await c.CommandAsync($"From: client{n}@good.example\r\nSubject: load {n}-{m}\r\nMessage-ID: <load-{n}-{m}@good.example>\r\n\r\nunder attack\r\n.", 250);
                    }
                    await c.CommandAsync("QUIT", 221);
                }
                catch (Exception e)
                {
                    problems.Enqueue($"client {n}: {e.Message}");
                }
            })));
            var sent = clock.Elapsed;
            await server.WaitForDeliveryAsync("alice@example.test", Clients * PerClient, timeoutMs: 60_000);
            await stopFlood.CancelAsync();
            await Task.WhenAll(flood);

            GC.Collect();
            var after = GC.GetTotalMemory(forceFullCollection: true);
            var open = server.LogLines.Count(l => l.Contains("event=connect", StringComparison.Ordinal));
            output.WriteLine($"{Clients * PerClient} messages in {sent.TotalSeconds:0.0} s beside {Idle} idle connections; flood: {greeted} greeted, {refused} refused; managed heap {before} -> {after} bytes");

            Assert.Empty(problems);
            Assert.Equal(Clients * PerClient, server.Delivered("alice@example.test").Length);
            // Throttled: at most the per-minute allowance was greeted, and the rest refused.
            Assert.InRange(greeted, 1, 100);
            Assert.True(refused > greeted, $"the flood was not throttled: {greeted} greeted, {refused} refused");
            // Bounded: 2,000 idle sessions and the rest cost far less than 100 KiB each on the heap.
            Assert.True(after - before < Idle * 100L * 1024, $"managed heap grew by {(after - before) / 1048576.0:0.0} MiB");
        }
        finally
        {
            idle.ForEach(t => t.Dispose());
        }
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var deadline = Environment.TickCount64 + 60_000;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"waited 60 s for {what}");
            }
            await Task.Delay(50);
        }
    }
}
