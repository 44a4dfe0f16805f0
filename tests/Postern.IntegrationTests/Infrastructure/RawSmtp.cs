using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A deliberately dumb SMTP client over a real socket: sends exactly the bytes a test gives it and
/// reads replies as the server sends them. For misbehaviour that real clients refuse to produce.
/// </summary>
public sealed class RawSmtp : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _stream;
    private readonly MemoryStream _pending = new();
    private readonly byte[] _buffer = new byte[16384];

    private RawSmtp(TcpClient tcp, Stream stream)
    {
        _tcp = tcp;
        _stream = stream;
    }

    public static TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Connects (with implicit TLS when <paramref name="implicitTls"/>) and reads nothing yet;
    /// from <paramref name="from"/> (another loopback address, standing for another client) when given.
    /// </summary>
    public static async Task<RawSmtp> ConnectAsync(int port, bool implicitTls = false, System.Net.IPAddress? from = null, string host = "127.0.0.1")
    {
        var tcp = from is null ? new TcpClient() : new TcpClient(new System.Net.IPEndPoint(from, 0));
        await tcp.ConnectAsync(host, port);
        Stream s = tcp.GetStream();
        if (implicitTls)
        {
            var ssl = new SslStream(s, false, (_, _, _, _) => true);
            await ssl.AuthenticateAsClientAsync("localhost");
            s = ssl;
        }
        return new RawSmtp(tcp, s);
    }

    /// <summary>Connects and reads the greeting.</summary>
    public static async Task<RawSmtp> OpenAsync(int port, bool implicitTls = false, string? ehlo = "client.example", System.Net.IPAddress? from = null, string host = "127.0.0.1")
    {
        var c = await ConnectAsync(port, implicitTls, from, host);
        await c.ExpectAsync(220);
        if (ehlo is not null)
        {
            await c.CommandAsync($"EHLO {ehlo}", 250);
        }
        return c;
    }

    public SslStream? Tls => _stream as SslStream;

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Sends a line with CRLF and reads one reply.</summary>
    public async Task<string> CommandAsync(string line, int? expect = null)
    {
        await SendAsync(line + "\r\n");
        return expect is null ? await ReadReplyAsync() : await ExpectAsync(expect.Value);
    }

    /// <summary>Reads one reply (all its lines); throws if the code is not the expected one.</summary>
    public async Task<string> ExpectAsync(int code)
    {
        var reply = await ReadReplyAsync();
        if (!reply.StartsWith(code.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal))
        {
            throw new Xunit.Sdk.XunitException($"expected {code}, got: {reply}");
        }
        return reply;
    }

    /// <summary>Reads one complete reply; returns "" if the server closed the connection.</summary>
    public async Task<string> ReadReplyAsync()
    {
        var sb = new StringBuilder();
        while (true)
        {
            var line = await ReadLineAsync();
            if (line is null)
            {
                return sb.ToString();
            }
            sb.Append(line).Append('\n');
            if (line.Length < 4 || line[3] != '-')
            {
                return sb.ToString().TrimEnd('\n');
            }
        }
    }

    /// <summary>True once the server has closed the connection (reads until EOF, within the timeout).</summary>
    public async Task<bool> IsClosedAsync()
    {
        try
        {
            while (true)
            {
                var line = await ReadLineAsync();
                if (line is null)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task<string?> ReadLineAsync()
    {
        while (true)
        {
            var data = _pending.ToArray();
            var lf = Array.IndexOf(data, (byte)'\n');
            if (lf >= 0)
            {
                _pending.SetLength(0);
                _pending.Write(data, lf + 1, data.Length - lf - 1);
                return Encoding.UTF8.GetString(data, 0, lf).TrimEnd('\r');
            }
            using var cts = new CancellationTokenSource(ReadTimeout);
            int n;
            try
            {
                n = await _stream.ReadAsync(_buffer, cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("no reply from the server");
            }
            if (n == 0)
            {
                return null;
            }
            _pending.Write(_buffer, 0, n);
        }
    }

    /// <summary>STARTTLS then the handshake, accepting the self-signed certificate.</summary>
    public async Task StartTlsAsync()
    {
        await CommandAsync("STARTTLS", 220);
        var ssl = new SslStream(_stream, false, (_, _, _, _) => true);
        await ssl.AuthenticateAsClientAsync("localhost");
        _stream = ssl;
    }

    /// <summary>AUTH PLAIN with an initial response.</summary>
    public Task<string> AuthPlainAsync(string user, string password, string authzid = "") =>
        CommandAsync("AUTH PLAIN " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{authzid}\0{user}\0{password}")));

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
