using System.Text.Json;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Cli;

/// <summary>
/// Puts messages straight into a data directory's queue, as a server would have left them: with a
/// delivery state and a hold marker when asked. Used before a server starts (in TestServer's
/// configure callback, or with no server at all).
/// </summary>
internal static class QueueSeed
{
    public static readonly string[] LocalDomains = ["example.test", "localhost"];

    public static QueueId Message(string dataDir, string from, string[] to, DateTimeOffset? received = null, Action<DeliveryState>? state = null, bool held = false)
    {
        var queue = Path.Combine(dataDir, "queue");
        var spool = new Spool(queue);
        try
        {
            var at = received ?? DateTimeOffset.UtcNow;
            var id = QueueId.New(at);
            using (var w = spool.Create(new Envelope
            {
                Id = id.Value,
                Received = at,
                From = from,
                ClientIp = "127.0.0.1",
                Helo = "client.test",
                Listener = "mx",
                Protocol = "ESMTP",
                Recipients = to.Select(t => new EnvelopeRecipient { Address = t, Local = LocalDomains.Contains(t[(t.IndexOf('@') + 1)..]) }).ToList(),
            }))
            {
                w.WriteText($"From: {from}\r\nTo: {string.Join(", ", to)}\r\nSubject: seeded {id}\r\nMessage-ID: <{id}@client.test>\r\n\r\nhello\r\n");
                w.CommitAsync().GetAwaiter().GetResult();
            }
            if (state is not null)
            {
                var s = QueueControl.InitialState(spool.Read(id).Envelope);
                state(s);
                spool.WriteState(id, s);
            }
            if (held)
            {
                new QueueControl(queue).Hold(id);
            }
            return id;
        }
        finally
        {
            spool.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>A remote recipient that failed <paramref name="attempts"/> times and waits for its next attempt.</summary>
    public static Action<DeliveryState> Deferred(int attempts, DateTimeOffset next, string detail = "451 4.3.0 try again later") => s =>
    {
        foreach (var r in s.Recipients.Where(r => !r.Local))
        {
            r.Status = RecipientStatus.Deferred;
            r.Attempts = attempts;
            r.LastAttempt = next - TimeSpan.FromMinutes(5);
            r.NextAttempt = next;
            r.Detail = detail;
        }
    };

    public static DeliveryState? State(string dataDir, QueueId id)
    {
        var path = Path.Combine(dataDir, "queue", "state", id.Value);
        return File.Exists(path) ? JsonSerializer.Deserialize<DeliveryState>(File.ReadAllText(path)) : null;
    }

    public static bool IsQueued(string dataDir, QueueId id) => File.Exists(Path.Combine(dataDir, "queue", "messages", id.Value));

    public static bool IsHeld(string dataDir, QueueId id) => File.Exists(Path.Combine(dataDir, "queue", "hold", id.Value));

    /// <summary>Files in an account's Maildir new/.</summary>
    public static string[] NewMail(string dataDir, string account)
    {
        var at = account.IndexOf('@');
        var dir = Path.Combine(dataDir, "mail", account[(at + 1)..], account[..at], "new");
        return Directory.Exists(dir) ? Directory.GetFiles(dir) : [];
    }

    /// <summary>The zone of a destination whose one MX (127.0.0.1) refuses connections on Delivery.RemotePort 9: every attempt defers at once.</summary>
    public static readonly string RefusingZone = DnsServer.Zone("peer.test", """
        @        IN MX 10 mx.peer.test.
        mx       IN A   127.0.0.1
        """);

    public static async Task WaitForAsync(Func<bool> condition, string what, int timeoutMs = 10_000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (!condition())
        {
            Assert.True(Environment.TickCount64 < deadline, $"not within {timeoutMs} ms: {what}");
            await Task.Delay(20);
        }
    }
}

/// <summary>
/// A server in this process on a data directory the test prepared (TestServer always makes a fresh
/// one): the accounts alice and bob, TestServer's options, and its log lines kept. Dispose stops it
/// and leaves the directory (the test owns it).
/// </summary>
internal sealed class SeededServer : IAsyncDisposable
{
    private static readonly Lazy<string> Hash = new(() => Postern.Server.Accounts.PasswordHasher.Hash(TestServer.AlicePassword));
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();
    private Postern.Server.Logging.KeyValueLoggerProvider? _logs;
    private Postern.Server.PosternServer? _server;

    public string Logs => string.Concat(_lines);

    public static Task<SeededServer> StartAsync(string dataDir, Action<Postern.Server.Configuration.PosternOptions>? configure = null, TimeProvider? time = null)
    {
        var options = TestServer.DefaultOptions(dataDir);
        configure?.Invoke(options);
        File.WriteAllText(Path.Combine(dataDir, "passwd"), $"alice@example.test:{Hash.Value}\nbob@example.test:{Hash.Value}\n");
        var s = new SeededServer();
        s._logs = new Postern.Server.Logging.KeyValueLoggerProvider(new Sink(s._lines), Microsoft.Extensions.Logging.LogLevel.Debug, time);
        s._server = new Postern.Server.PosternServer(options, s._logs.CreateLogger("test"), time);
        s._server.Start();
        return Task.FromResult(s);
    }

    public async Task<string> WaitForLogAsync(params string[] fragments)
    {
        string? line = null;
        await QueueSeed.WaitForAsync(() => (line = _lines.FirstOrDefault(l => fragments.All(f => l.Contains(f, StringComparison.Ordinal)))) is not null,
            $"a log line with {string.Join(" & ", fragments)}. Log:\n{Logs}");
        return line!;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        _logs?.Dispose();
    }

    private sealed class Sink(System.Collections.Concurrent.ConcurrentQueue<string> lines) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
        public override void Write(string? value)
        {
            if (value is not null)
            {
                lines.Enqueue(value);
            }
        }
        public override void Write(char value) => Write(value.ToString());
    }
}
