using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.Server.Configuration;
using Postern.Server.Filters.Rspamd;

namespace Postern.Server.Tests.Filters.Rspamd;

/// <summary>
/// <see cref="RspamdClient"/> against an HTTP server on loopback that answers as told: the request
/// it sends (headers, streamed body with its length), and every way a reply can fail (slow, huge,
/// HTTP error, garbage, nobody listening) turned into Unavailable within its bounds.
/// </summary>
public sealed class RspamdClientOverLoopback
{
    private const string NoAction = """{"is_skipped":false,"score":1.5,"required_score":15.0,"action":"no action","symbols":{"R1":{"name":"R1","score":1.5}}}""";

    private static readonly byte[] Message = Encoding.ASCII.GetBytes("From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n");

    private static RspamdOptions Options(int port, bool failOpen = false) => new()
    {
        Url = $"http://127.0.0.1:{port}",
        FailOpen = failOpen,
        SettingsIdMx = "inbound",
        SettingsIdSubmission = "outbound",
        CheckSubmission = true,
    };

    private static RspamdRequest Request(ListenerRole role = ListenerRole.Mx) => new()
    {
        Role = role,
        ClientAddress = IPAddress.Parse("::ffff:192.0.2.7"),
        ClientHostname = "mail.example.net",
        Helo = "mail.example.net\r\nX-Injected: 1",
        MailFrom = "",
        Recipients = ["b@example.org", "c@example.org"],
        QueueId = "QID123",
        User = role == ListenerRole.Mx ? null : "alice@example.org",
        TlsCipher = "TLS_AES_256_GCM_SHA384",
        TlsVersion = "TLSv1.3",
    };

    [Fact]
    public async Task TheRequestCarriesTheEnvelopeAndStreamsTheMessageWithItsLength()
    {
        using var server = new OneShotHttpServer(Reply(200, NoAction));
        using var client = new RspamdClient(Options(server.Port), "mx.example.org", TimeProvider.System);
        // The message starts part-way into the stream, as the spool file's body after its envelope might.
        var stream = new MemoryStream([.. "ENVELOPE"u8.ToArray(), .. Message]) { Position = 8 };
        var v = await client.CheckAsync(Request(), stream, Message.Length, CancellationToken.None);

        Assert.Equal(RspamdVerdictKind.Accept, v.Kind);
        var (head, body) = await server.Received;
        Assert.StartsWith("POST /checkv2 HTTP/1.1\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nIp: 192.0.2.7\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nHostname: mail.example.net\r\n", head, StringComparison.Ordinal);
        // A line break in a value cannot add a header of its own.
        Assert.Contains("\r\nHelo: mail.example.net  X-Injected: 1\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nFrom: <>\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nRcpt: b@example.org, c@example.org\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nQueue-Id: QID123\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nSettings-ID: inbound\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nMTA-Name: mx.example.org\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nTLS-Cipher: TLS_AES_256_GCM_SHA384\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nTLS-Version: TLSv1.3\r\n", head, StringComparison.Ordinal);
        Assert.Contains($"\r\nContent-Length: {Message.Length}\r\n", head, StringComparison.Ordinal);
        Assert.DoesNotContain("chunked", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("\r\nUser:", head, StringComparison.Ordinal);
        Assert.DoesNotContain("\r\nPass:", head, StringComparison.Ordinal);
        Assert.Equal(Message, body);
    }

    [Fact]
    public async Task SubmissionSendsTheUserAndItsSettingsId()
    {
        using var server = new OneShotHttpServer(Reply(200, NoAction));
        using var client = new RspamdClient(Options(server.Port), null, TimeProvider.System);
        await client.CheckAsync(Request(ListenerRole.Submission), new MemoryStream(Message), Message.Length, CancellationToken.None);
        var (head, _) = await server.Received;
        Assert.Contains("\r\nUser: alice@example.org\r\n", head, StringComparison.Ordinal);
        Assert.Contains("\r\nSettings-ID: outbound\r\n", head, StringComparison.Ordinal);
        Assert.DoesNotContain("MTA-Name", head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoReplyWithinTheTimeoutIsUnavailableOnTheInjectedClock()
    {
        using var server = new OneShotHttpServer(reply: null);
        var time = new FakeTimeProvider();
        using var client = new RspamdClient(Options(server.Port), null, time);
        var scan = client.CheckAsync(Request(), new MemoryStream(Message), Message.Length, CancellationToken.None);
        await server.Received; // rspamd has the whole request and says nothing
        time.Advance(TimeSpan.FromSeconds(14));
        await Task.Delay(50);
        Assert.False(scan.IsCompleted, "gave up before Rspamd.Timeout");
        time.Advance(TimeSpan.FromSeconds(1));
        var v = await scan.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(RspamdVerdictKind.Unavailable, v.Kind);
        Assert.Equal(RspamdVerdict.UnavailableReply, v.Reply);
        Assert.Contains("no reply within 15 s", v.Detail, StringComparison.Ordinal);
        Assert.True(v.OutageStarted);
        Assert.True(client.IsDown);
    }

    [Fact]
    public async Task NobodyListeningIsUnavailableAndTheOutageIsReportedOnce()
    {
        var port = FreePort();
        using var client = new RspamdClient(Options(port), null, TimeProvider.System);
        var first = await client.CheckAsync(Request(), new MemoryStream(Message), Message.Length, CancellationToken.None);
        var second = await client.CheckAsync(Request(), new MemoryStream(Message), Message.Length, CancellationToken.None);
        Assert.Equal(RspamdVerdictKind.Unavailable, first.Kind);
        Assert.Contains("refused", first.Detail, StringComparison.OrdinalIgnoreCase);
        Assert.True(first.OutageStarted);
        Assert.False(second.OutageStarted);

        // rspamd back: the next failure is a new outage.
        using var server = new OneShotHttpServer(Reply(200, NoAction), port);
        Assert.Equal(RspamdVerdictKind.Accept, (await client.CheckAsync(Request(), new MemoryStream(Message), Message.Length, CancellationToken.None)).Kind);
        Assert.False(client.IsDown);
    }

    [Fact]
    public async Task FailOpenAcceptsWhenRspamdIsDown()
    {
        using var client = new RspamdClient(Options(FreePort(), failOpen: true), null, TimeProvider.System);
        var v = await client.CheckAsync(Request(), new MemoryStream(Message), Message.Length, CancellationToken.None);
        Assert.Equal(RspamdVerdictKind.Unavailable, v.Kind);
        Assert.Null(v.Reply);
    }

    public static TheoryData<string, string> BadReplies => new()
    {
        { Reply(500, """{"error":"internal"}"""), "HTTP 500" },
        { Reply(200, "<html>not json</html>"), "malformed reply: not JSON" },
        { Reply(200, """{"score":1}"""), "malformed reply: no action" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n{", "over 1048576" },
        { "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"action\":\"no action\",\"x\":\"" + new string('a', 1_100_000) + "\"}", "over 1048576" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"action\"", "" },
    };

    [Theory]
    [MemberData(nameof(BadReplies))]
    public async Task AReplyThatIsNotOneIsUnavailable(string reply, string detail)
    {
        using var server = new OneShotHttpServer(reply);
        using var client = new RspamdClient(Options(server.Port), null, TimeProvider.System);
        var v = await client.CheckAsync(Request(), new MemoryStream(Message), Message.Length, CancellationToken.None);
        Assert.Equal(RspamdVerdictKind.Unavailable, v.Kind);
        Assert.Contains(detail, v.Detail, StringComparison.Ordinal);
        Assert.Equal(RspamdVerdict.UnavailableReply, v.Reply);
    }

    [Fact]
    public async Task TheCallersCancellationIsNotAnOutage()
    {
        using var server = new OneShotHttpServer(reply: null);
        using var client = new RspamdClient(Options(server.Port), null, TimeProvider.System);
        using var cts = new CancellationTokenSource();
        var scan = client.CheckAsync(Request(), new MemoryStream(Message), Message.Length, cts.Token);
        await server.Received;
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => scan);
        Assert.False(client.IsDown);
    }

    [Fact]
    public async Task AStreamShorterThanItsLengthIsNotSentAsIfWhole()
    {
        using var server = new OneShotHttpServer(Reply(200, NoAction));
        using var client = new RspamdClient(Options(server.Port), null, TimeProvider.System);
        var v = await client.CheckAsync(Request(), new MemoryStream(Message), Message.Length + 10, CancellationToken.None);
        Assert.Equal(RspamdVerdictKind.Unavailable, v.Kind);
    }

    [Fact]
    public void SkipRulesNeedNoConnection()
    {
        using var off = new RspamdClient(new RspamdOptions(), null, TimeProvider.System);
        Assert.False(off.Enabled);
        Assert.Equal(RspamdVerdictKind.Skipped, off.Skip(ListenerRole.Mx, 10)!.Kind);
        using var on = new RspamdClient(new RspamdOptions { Url = "http://127.0.0.1:11333", MaxMessageSize = 1000 }, null, TimeProvider.System);
        Assert.Null(on.Skip(ListenerRole.Mx, 1000));
        Assert.Contains("MaxMessageSize", on.Skip(ListenerRole.Mx, 1001)!.Detail, StringComparison.Ordinal);
        Assert.Contains("CheckSubmission", on.Skip(ListenerRole.Submission, 10)!.Detail, StringComparison.Ordinal);
        Assert.Contains("CheckSubmission", on.Skip(ListenerRole.Submissions, 10)!.Detail, StringComparison.Ordinal);
    }

    private static string Reply(int status, string json) =>
        $"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(json)}\r\nConnection: close\r\n\r\n{json}";

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Accepts one connection, reads one request (head and Content-Length body), then writes <c>reply</c> and closes, or with null holds the connection open, silent.</summary>
    private sealed class OneShotHttpServer : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly TaskCompletionSource<(string Head, byte[] Body)> _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _stop = new();

        public OneShotHttpServer(string? reply, int port = 0)
        {
            _listener = new TcpListener(IPAddress.Loopback, port);
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _ = Task.Run(() => ServeAsync(reply));
        }

        public int Port { get; }

        public Task<(string Head, byte[] Body)> Received => _received.Task.WaitAsync(TimeSpan.FromSeconds(10));

        private async Task ServeAsync(string? reply)
        {
            try
            {
                using var socket = await _listener.AcceptSocketAsync(_stop.Token);
                var buffer = new List<byte>();
                var chunk = new byte[8192];
                int headEnd;
                while ((headEnd = IndexOf(buffer, "\r\n\r\n"u8.ToArray())) < 0)
                {
                    var n = await socket.ReceiveAsync(chunk, _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }
                    buffer.AddRange(chunk.AsSpan(0, n));
                }
                var head = Encoding.UTF8.GetString(buffer.GetRange(0, headEnd + 4).ToArray());
                var lengthLine = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                var length = lengthLine is null ? 0 : int.Parse(lengthLine["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                while (buffer.Count < headEnd + 4 + length)
                {
                    var n = await socket.ReceiveAsync(chunk, _stop.Token);
                    if (n == 0)
                    {
                        break;
                    }
                    buffer.AddRange(chunk.AsSpan(0, n));
                }
                _received.TrySetResult((head, buffer.Skip(headEnd + 4).ToArray()));
                if (reply is null)
                {
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return;
                }
                await socket.SendAsync(Encoding.UTF8.GetBytes(reply), _stop.Token);
                socket.Shutdown(SocketShutdown.Send);
                // Let the client read everything before the socket closes under it.
                while (await socket.ReceiveAsync(chunk, _stop.Token) > 0)
                {
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
            {
                _received.TrySetException(e);
            }
        }

        private static int IndexOf(List<byte> haystack, byte[] needle)
        {
            for (var i = 0; i + needle.Length <= haystack.Count; i++)
            {
                var match = true;
                for (var j = 0; j < needle.Length && match; j++)
                {
                    match = haystack[i + j] == needle[j];
                }
                if (match)
                {
                    return i;
                }
            }
            return -1;
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            _stop.Dispose();
        }
    }
}
