using System.Net;
using System.Net.Sockets;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4, item 6: with HAProxy from Debian as the real proxy in front of a PROXY-protocol listener,
/// Postern sees each client's own address — in its log, its Received header and its per-IP limit —
/// and a peer that is not the proxy, or a header that is not right, gets nothing at all.
/// Addresses: HAProxy listens on 127.0.0.9 and connects to Postern from 127.0.0.10 (the only trusted
/// proxy); clients come from 127.0.0.77 and 127.0.0.78.
/// </summary>
public sealed class ProxyProtocolThroughHaproxy
{
    public const string ProxyAddress = "127.0.0.10";

    /// <summary>A server whose mx listener expects the PROXY protocol from <see cref="ProxyAddress"/> only.</summary>
    public static Task<TestServer> StartServerAsync(Action<Postern.Server.Configuration.PosternOptions>? configure = null) =>
        TestServer.StartAsync(o =>
        {
            o.Listeners[0].ProxyProtocol = true;
            o.Listeners[0].TrustedProxies = [$"{ProxyAddress}/32"];
            configure?.Invoke(o);
        });

    [Theory]
    [InlineData("send-proxy", 1)]
    [InlineData("send-proxy-v2", 2)]
    [InlineData("send-proxy-v2 proxy-v2-options crc32c,unique-id,authority", 2)]
    public async Task TheClientAddressSeenIsTheRealOne(string serverOptions, int version)
    {
        await using var server = await StartServerAsync();
        await using var haproxy = await HaproxyPeer.StartAsync(new IPEndPoint(IPAddress.Loopback, server.MxPort), serverOptions, sourceAddress: ProxyAddress);

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("someone@remote.example"));
        message.To.Add(MailboxAddress.Parse("alice@example.test"));
        message.Subject = $"through HAProxy, PROXY v{version}";
        message.Body = new TextPart("plain") { Text = "Hello through the proxy.\r\n" };
        using (var client = new SmtpClient())
        {
            client.LocalDomain = "client.example";
            // MailKit connects from the address given here: the client HAProxy must name.
            client.LocalEndPoint = new IPEndPoint(IPAddress.Parse("127.0.0.77"), 0);
            await client.ConnectAsync(haproxy.EndPoint.Address.ToString(), haproxy.EndPoint.Port, SecureSocketOptions.None);
            var reply = await client.SendAsync(message);
            Assert.StartsWith("2.0.0", reply, StringComparison.Ordinal);
            await client.DisconnectAsync(quit: true);
        }

        var connect = await server.WaitForLogAsync("event=connect ", "listener=mx", "ip=127.0.0.77 ");
        var session = Field(connect, "session");
        var proxy = await server.WaitForLogAsync("event=proxy ", $"session={session} ");
        Assert.Contains($"proxy={ProxyAddress} ip=127.0.0.77 ", proxy, StringComparison.Ordinal);
        Assert.Contains($"version={version} command=proxy", proxy, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=accepted ", $"session={session} ", "ip=127.0.0.77 ");
        await server.WaitForLogAsync("event=disconnect ", $"session={session} ", "ip=127.0.0.77 ");
        // The proxy itself is nowhere taken for the client.
        Assert.DoesNotContain(server.LogLines, l => l.Contains($"ip={ProxyAddress} ", StringComparison.Ordinal));
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=proxy_refused", StringComparison.Ordinal));

        var delivered = Encoding.Latin1.GetString((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.Contains("Received: from client.example ([127.0.0.77])", delivered, StringComparison.Ordinal);
        Assert.DoesNotContain(ProxyAddress, delivered, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ThePerIpLimitCountsTheRealClientNotTheProxy()
    {
        await using var server = await StartServerAsync(o => o.Limits.MaxConnectionsPerIp = 2);
        await using var haproxy = await HaproxyPeer.StartAsync(new IPEndPoint(IPAddress.Loopback, server.MxPort), "send-proxy-v2", sourceAddress: ProxyAddress);

        // Two from 127.0.0.77 fill its share; every connection reaches Postern from the proxy's address.
        await using var first = await LoopbackClient.ConnectAsync("127.0.0.77", haproxy.EndPoint);
        Assert.StartsWith("220 ", await first.ReadLineAsync(), StringComparison.Ordinal);
        await using var second = await LoopbackClient.ConnectAsync("127.0.0.77", haproxy.EndPoint);
        Assert.StartsWith("220 ", await second.ReadLineAsync(), StringComparison.Ordinal);

        await using var third = await LoopbackClient.ConnectAsync("127.0.0.77", haproxy.EndPoint);
        Assert.StartsWith("421 4.7.0 ", await third.ReadLineAsync(), StringComparison.Ordinal);
        await server.WaitForLogAsync("event=connection_refused ", "ip=127.0.0.77 ", "code=421");

        // Another client behind the same proxy still gets in: the proxy's address was never counted.
        await using var other = await LoopbackClient.ConnectAsync("127.0.0.78", haproxy.EndPoint);
        Assert.StartsWith("220 ", await other.ReadLineAsync(), StringComparison.Ordinal);
        await server.WaitForLogAsync("event=connect ", "ip=127.0.0.78 ");
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=connection_refused", StringComparison.Ordinal) && l.Contains("ip=127.0.0.78 ", StringComparison.Ordinal));

        // And once a slot of 127.0.0.77 is free again, it is let in again.
        await first.SendAsync("QUIT\r\n");
        Assert.StartsWith("221 ", await first.ReadLineAsync(), StringComparison.Ordinal);
        Assert.True(await first.IsClosedAsync());
        await server.WaitForLogAsync("event=disconnect ", "ip=127.0.0.77 ", "reason=quit");
        // The slot is given back just after the disconnect line is written: allow for that moment.
        var deadline = Environment.TickCount64 + 5_000;
        while (true)
        {
            await using var fourth = await LoopbackClient.ConnectAsync("127.0.0.77", haproxy.EndPoint);
            var greeting = await fourth.ReadLineAsync();
            if (greeting?.StartsWith("220 ", StringComparison.Ordinal) == true)
            {
                break;
            }
            Assert.True(Environment.TickCount64 < deadline, $"127.0.0.77 is still refused after one of its sessions ended: {greeting}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task OtherListenersOfTheSameServerTakeNoHeader()
    {
        // ProxyProtocol is per listener: submission, without it, greets a direct client at once.
        await using var server = await StartServerAsync();
        await using var direct = await LoopbackClient.ConnectAsync("127.0.0.1", new IPEndPoint(IPAddress.Loopback, server.SubmissionPort));
        Assert.StartsWith("220 ", await direct.ReadLineAsync(), StringComparison.Ordinal);
    }

    internal static string Field(string line, string key)
    {
        var start = line.IndexOf($" {key}=", StringComparison.Ordinal) + key.Length + 2;
        var end = line.IndexOf(' ', start);
        return end < 0 ? line[start..].TrimEnd('\n') : line[start..end];
    }
}

/// <summary>
/// What a PROXY-protocol listener does with connections that are not a trusted proxy's well-formed
/// header: it closes them without sending a byte (no greeting, no 421), and logs event=proxy_refused.
/// </summary>
public sealed class ProxyProtocolRefusals
{
    private const string ProxyAddress = ProxyProtocolThroughHaproxy.ProxyAddress;

    [Fact]
    public async Task ADirectConnectionFromAnUntrustedAddressIsClosedWithoutAGreeting()
    {
        await using var server = await ProxyProtocolThroughHaproxy.StartServerAsync();
        var listener = new IPEndPoint(IPAddress.Loopback, server.MxPort);

        // Even a well-formed header naming someone else does not help a peer that is not the proxy.
        await using var forger = await LoopbackClient.ConnectAsync("127.0.0.1", listener);
        await forger.SendAsync("PROXY TCP4 192.0.2.66 127.0.0.1 40000 25\r\n", ignoreReset: true);
        Assert.Equal("", await forger.ReadToEndAsync());
        var refused = await server.WaitForLogAsync("event=proxy_refused ", "ip=127.0.0.1 ");
        Assert.Contains("reason=\"not a trusted proxy\"", refused, StringComparison.Ordinal);

        await using var silent = await LoopbackClient.ConnectAsync("127.0.0.78", listener);
        Assert.Equal("", await silent.ReadToEndAsync());
        await server.WaitForLogAsync("event=proxy_refused ", "ip=127.0.0.78 ", "not a trusted proxy");

        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=connect ", StringComparison.Ordinal));
        Assert.DoesNotContain(server.LogLines, l => l.Contains("192.0.2.66", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("EHLO client.example\r\n", "not a PROXY protocol header")]
    [InlineData("GET / HTTP/1.1\r\nHost: mx.example.test\r\n\r\n", "not a PROXY protocol header")]
    [InlineData("PROXY TCP4 192.0.2.300 127.0.0.1 40000 25\r\n", "the source is not an IPv4 address")]
    [InlineData("PROXY TCP4 192.0.2.1 127.0.0.1 40000 025\r\n", "the destination port is not a number")]
    [InlineData("PROXY TCP4 192.0.2.1 127.0.0.1 40000 25\n", "bare LF")]
    [InlineData("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535 and more\r\n", "no CRLF within 107 octets")]
    // v2 (written in hex): command 2, then the AF_UNIX family, then a wrong CRC32C.
    [InlineData("hex:0D0A0D0A000D0A515549540A" + "2211000C" + "C0000201" + "7F000001" + "9C40" + "0019", "unknown command 0x2")]
    [InlineData("hex:0D0A0D0A000D0A515549540A" + "21310000", "unsupported family and transport 0x31")]
    [InlineData("hex:0D0A0D0A000D0A515549540A" + "21110013" + "C0000201" + "7F000001" + "9C40" + "0019" + "030004" + "00000000", "CRC32C checksum mismatch")]
    public async Task AGarbledHeaderFromTheProxyIsClosedWithoutAGreeting(string header, string reason)
    {
        await using var server = await ProxyProtocolThroughHaproxy.StartServerAsync();
        // From the trusted proxy's own address, so the header is read and judged.
        await using var client = await LoopbackClient.ConnectAsync(ProxyAddress, new IPEndPoint(IPAddress.Loopback, server.MxPort));
        var bytes = header.StartsWith("hex:", StringComparison.Ordinal) ? Convert.FromHexString(header[4..]) : Encoding.Latin1.GetBytes(header);
        await client.SendAsync(bytes, ignoreReset: true);
        Assert.Equal("", await client.ReadToEndAsync());
        var refused = await server.WaitForLogAsync("event=proxy_refused ", $"ip={ProxyAddress} ");
        Assert.Contains("bad PROXY header", refused, StringComparison.Ordinal);
        Assert.Contains(reason, refused, StringComparison.Ordinal);
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=connect ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AProxyThatSaysNothingIsDroppedAfterTheTimeout()
    {
        await using var server = await ProxyProtocolThroughHaproxy.StartServerAsync();
        await using var client = await LoopbackClient.ConnectAsync(ProxyAddress, new IPEndPoint(IPAddress.Loopback, server.MxPort));
        // Half a header, then silence: Postern waits for the rest no longer than its timeout.
        await client.SendAsync("PROXY TCP4 192.0.2.1 ");
        var started = Environment.TickCount64;
        Assert.Equal("", await client.ReadToEndAsync(TimeSpan.FromSeconds(20)));
        var waited = TimeSpan.FromMilliseconds(Environment.TickCount64 - started);
        Assert.InRange(waited, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(15));
        var refused = await server.WaitForLogAsync("event=proxy_refused ", $"ip={ProxyAddress} ");
        Assert.Contains("no complete PROXY header within 5 s", refused, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AHeaderCutShortByTheProxyIsRefused()
    {
        await using var server = await ProxyProtocolThroughHaproxy.StartServerAsync();
        var client = await LoopbackClient.ConnectAsync(ProxyAddress, new IPEndPoint(IPAddress.Loopback, server.MxPort));
        // The fixed part announces 12 octets of addresses; one comes, then the proxy closes.
        await client.SendAsync(Convert.FromHexString("0D0A0D0A000D0A515549540A" + "2111000C" + "7F"));
        await client.DisposeAsync();
        var refused = await server.WaitForLogAsync("event=proxy_refused ", $"ip={ProxyAddress} ");
        Assert.Contains("closed in the middle of the PROXY header", refused, StringComparison.Ordinal);
    }
}

/// <summary>A TCP client bound to a chosen loopback address, for what MailKit will not do (send garbage, count bytes).</summary>
internal sealed class LoopbackClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly MemoryStream _pending = new();

    private LoopbackClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public static async Task<LoopbackClient> ConnectAsync(string localAddress, IPEndPoint remote)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Parse(localAddress), 0));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await socket.ConnectAsync(remote, cts.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new LoopbackClient(socket);
    }

    public Task SendAsync(string text, bool ignoreReset = false) => SendAsync(Encoding.Latin1.GetBytes(text), ignoreReset);

    /// <summary>Sends; with <paramref name="ignoreReset"/>, a server that already closed (reset) is no failure.</summary>
    public async Task SendAsync(byte[] bytes, bool ignoreReset = false)
    {
        try
        {
            await _stream.WriteAsync(bytes);
            await _stream.FlushAsync();
        }
        catch (IOException) when (ignoreReset)
        {
        }
    }

    /// <summary>One line without its CRLF; null at the end of the stream.</summary>
    public async Task<string?> ReadLineAsync()
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var data = _pending.ToArray();
            var lf = Array.IndexOf(data, (byte)'\n');
            if (lf >= 0)
            {
                _pending.SetLength(0);
                _pending.Write(data, lf + 1, data.Length - lf - 1);
                return Encoding.Latin1.GetString(data, 0, lf).TrimEnd('\r');
            }
            var n = await _stream.ReadAsync(buffer, cts.Token);
            if (n == 0)
            {
                return null;
            }
            _pending.Write(buffer, 0, n);
        }
    }

    /// <summary>Everything the server sends until it closes (a reset counts as a close); fails if it does not close in time.</summary>
    public async Task<string> ReadToEndAsync(TimeSpan? timeout = null)
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var n = await _stream.ReadAsync(buffer, cts.Token);
                if (n == 0)
                {
                    break;
                }
                _pending.Write(buffer, 0, n);
            }
        }
        catch (IOException)
        {
            // Reset by the server: closed too.
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the server did not close the connection; it sent: {Encoding.Latin1.GetString(_pending.ToArray())}");
        }
        return Encoding.Latin1.GetString(_pending.ToArray());
    }

    public async Task<bool> IsClosedAsync()
    {
        await ReadToEndAsync();
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}
