using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.CrashSafety;

/// <summary>
/// SIGKILL while the queue is delivering to another server. Each message has two remote
/// recipients: carol@peer.test, whom a second Postern on 127.0.0.61 accepts, and dave@dead.test,
/// whose MX (127.0.0.62) never answers, so every message stays queued with one outcome that must
/// not be forgotten. After the kill and a restart: every message reached the peer (nothing lost);
/// a message is delivered twice at most when it was in flight at the kill (at least once, never
/// repeated wholesale: the restarted server does not deliver again what its state files say was
/// delivered); and every message is still queued for dave with carol recorded as delivered.
/// </summary>
public sealed class KilledDuringDeliveryForgetsNothing(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Messages = 300;
    private const int Workers = 54; // Delivery.LocalConcurrency + RemoteConcurrency, the most that can be in flight
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private static readonly string Zone = DnsServer.Zone("peer.test", """
        @        IN MX 10 live.peer.test.
        live     IN A   127.0.0.61
        """);

    private static readonly string DeadZone = DnsServer.Zone("dead.test", """
        @        IN MX 10 mx.dead.test.
        mx       IN A   127.0.0.62
        """);

    [Fact]
    public async Task NothingLostAndNoOutcomeForgotten()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["peer.test"] = Zone, ["dead.test"] = DeadZone });
        await using var peer = await TestServer.StartAsync(o =>
        {
            o.Domains = ["example.test", "peer.test"];
            // The sender opens up to Delivery.DestinationConcurrency (20) connections at once and
            // replaces them after the kill: the peer's per-address limits must not turn that into
            // 421s and five-minute deferrals.
            o.Limits.MaxConnectionsPerIp = 200;
            o.Limits.MaxConnectionsPerIpPerMinute = 0;
            o.Aliases["carol@peer.test"] = ["alice@example.test"];
            o.Listeners =
            [
                new ListenerOptions { Name = "mx", Endpoint = "127.0.0.61:0", Role = ListenerRole.Mx },
                new ListenerOptions { Name = "submission", Endpoint = "127.0.0.61:0", Role = ListenerRole.Submission },
                new ListenerOptions { Name = "submissions", Endpoint = "127.0.0.61:0", Role = ListenerRole.Submissions },
            ];
        });
        var root = Path.Combine(Path.GetTempPath(), "postern-crash-tests", Guid.NewGuid().ToString("N")[..12]);
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        await File.WriteAllTextAsync(Path.Combine(data, "passwd"), $"alice@example.test:{PasswordHasher.Hash("unused-password")}\n");
        var settings = new Dictionary<string, object>
        {
            ["Relay"] = new { TrustedNetworks = new[] { "127.0.0.0/8" } },
            ["Dns"] = new { Servers = new[] { dns.Server } },
            ["Delivery"] = new { RemotePort = peer.MxPort },
        };
        try
        {
            // The backlog is in the spool before the server starts (as after an outage), so that
            // delivery runs at full speed from the first moment and the kill lands in mid-stream.
            await Spooled.IntoAsync(data, Messages, i => (new Envelope
            {
                From = "app@origin.test",
                Recipients = [new EnvelopeRecipient { Address = "carol@peer.test" }, new EnvelopeRecipient { Address = "dave@dead.test" }],
            }, $"From: app@origin.test\r\nSubject: crash {i}\r\nMessage-ID: <crash-{i}@origin.test>\r\n\r\nbody {i}\r\n"));
            int atKill;
            using (var server = await PosternProcess.StartAsync(data, StartTimeout, settings))
            {
                // Kill once the sender has handed a fifth of the messages over (its own log says so:
                // the peer's mailbox may lag behind its 250s on a busy machine).
                var sent = 0;
                server.LineReceived += line =>
                {
                    if (line.Contains("to=carol@peer.test", StringComparison.Ordinal) && line.Contains("status=sent", StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref sent);
                    }
                };
                await WaitForAsync(() => Volatile.Read(ref sent) >= Messages / 5, server);
                server.KillHard();
                atKill = Volatile.Read(ref sent);
            }
            int acknowledged;
            await using (var spool = new Spool(Path.Combine(data, "queue")))
            {
                acknowledged = spool.ListIds().Count;
            }
            Assert.True(atKill < acknowledged, $"all {acknowledged} messages were handed to the peer before the kill; the test must kill mid-delivery");

            using (var server = await PosternProcess.StartAsync(data, StartTimeout, settings))
            {
                // Every acknowledged message reaches carol (nothing lost).
                await WaitForAsync(() => Distinct(peer).Count >= acknowledged, server);
                // Let the restarted server go over its whole queue once more (recovery passes every message).
                await Task.Delay(1000);
                var copies = peer.Delivered("alice@example.test").Length;
                output.WriteLine($"{acknowledged} messages, {atKill} handed over when killed, {copies - acknowledged} delivered twice");
                Assert.Equal(acknowledged, Distinct(peer).Count);
                Assert.True(copies - acknowledged <= Workers, $"{copies - acknowledged} duplicate deliveries: more than the {Workers} that could have been in flight at the kill, so outcomes were forgotten");

                // dave's outcome is kept too: every message is still queued, carol delivered, dave deferred.
                await using var spool = new Spool(Path.Combine(data, "queue"));
                var ids = spool.ListIds();
                Assert.Equal(acknowledged, ids.Count);
                foreach (var id in ids)
                {
                    var state = spool.ReadState(id) ?? throw new Xunit.Sdk.XunitException($"{id} has no state file");
                    Assert.Equal(RecipientStatus.Delivered, state.Recipients.Single(r => r.Address == "carol@peer.test").Status);
                    Assert.Equal(RecipientStatus.Deferred, state.Recipients.Single(r => r.Address == "dave@dead.test").Status);
                }
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>The Message-IDs that reached the peer.</summary>
    private static HashSet<string> Distinct(TestServer peer) =>
        peer.Delivered("alice@example.test")
            .Select(f => Encoding.UTF8.GetString(File.ReadAllBytes(f)))
            .Select(t => t[t.IndexOf("Message-ID: <crash-", StringComparison.Ordinal)..].Split('\r')[0])
            .ToHashSet();

    private static async Task WaitForAsync(Func<bool> condition, PosternProcess server)
    {
        var deadline = Environment.TickCount64 + 120_000;
        while (!condition())
        {
            Assert.False(server.HasExited, $"postern exited:\n{server.Output}");
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"condition not met in 120 s. Server output:\n{server.Output}");
            }
            await Task.Delay(10);
        }
    }
}
