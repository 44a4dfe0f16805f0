using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Postern.Diagnostics;

/// <summary>One SMTP reply: its code, enhanced status code (RFC 3463) when given, and its text lines.</summary>
public sealed record SmtpReply(int Code, string? Enhanced, IReadOnlyList<string> Lines)
{
    /// <summary>The text of every line, joined with spaces (without the codes).</summary>
    public string Text => string.Join(" ", Lines);

    /// <summary>As the server wrote it, lines joined with " / ": <c>250 2.1.5 Ok</c>.</summary>
    public override string ToString() => $"{Code}{(Enhanced is null ? "" : " " + Enhanced)} {string.Join(" / ", Lines)}".TrimEnd();

    public bool IsPositive => Code is >= 200 and < 400;

    public bool IsTemporary => Code is >= 400 and < 500;
}

/// <summary>Why a connection could not be made, or broke: the distinctions an admin needs.</summary>
public enum ProbeFailure
{
    /// <summary>RST to the SYN: the host is up, nothing listens on the port (or a firewall rejects).</summary>
    Refused,

    /// <summary>No answer at all within the timeout: a firewall drops the packets, or the host is down.</summary>
    Timeout,

    /// <summary>The connection was reset after it was made.</summary>
    Reset,

    /// <summary>The connection closed without a word (or in the middle of a reply).</summary>
    Closed,

    /// <summary>No route to the network or host.</summary>
    Unreachable,

    /// <summary>What came back is not SMTP.</summary>
    NotSmtp,

    /// <summary>The TLS handshake failed.</summary>
    Tls,
}

/// <summary>The word for a failure in reports' data (<c>refused</c>, <c>timeout</c>, <c>not_smtp</c>, ...).</summary>
public static class ProbeFailures
{
    public static string Word(this ProbeFailure failure) => failure == ProbeFailure.NotSmtp ? "not_smtp" : failure.ToString().ToLowerInvariant();
}

/// <summary>A connection or reply that failed; <see cref="Failure"/> says how.</summary>
public sealed class SmtpProbeException(ProbeFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    public ProbeFailure Failure { get; } = failure;
}

/// <summary>What a TLS handshake gave: version, cipher, the certificate and its chain, and what is wrong with them.</summary>
public sealed record TlsInfo(
    SslProtocols Protocol,
    TlsCipherSuite Cipher,
    X509Certificate2 Certificate,
    IReadOnlyList<X509Certificate2> Chain,
    SslPolicyErrors PolicyErrors,
    IReadOnlyList<X509ChainStatusFlags> ChainProblems)
{
    /// <summary>TLSv1.3, TLSv1.2 (<see cref="Postern.Server.Logging.TlsNames"/>).</summary>
    public string ProtocolName => Postern.Server.Logging.TlsNames.Version(Protocol);

    /// <summary>The certificate is for the name asked for (RFC 6125; as .NET checks it).</summary>
    public bool NameMatches => !PolicyErrors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch);

    /// <summary>The chain leads to a root this machine trusts, and nothing in it is expired or revoked.</summary>
    public bool ChainTrusted => !PolicyErrors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors);
}

/// <summary>
/// A bare SMTP client for diagnostics: it connects with a deadline and tells refused, timed out,
/// reset and unreachable apart, reads replies as they are (multi-line, with enhanced codes), sends
/// any command, and does STARTTLS or implicit TLS while recording the certificate instead of
/// refusing it, so that a bad one can be described rather than only rejected. Never sends mail:
/// the checks stop before DATA.
/// </summary>
public sealed class SmtpProbe : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly TimeSpan _timeout;
    private Stream _stream;
    private readonly byte[] _buffer = new byte[8192];
    private int _start;
    private int _end;

    private SmtpProbe(Socket socket, TimeSpan timeout)
    {
        _socket = socket;
        _timeout = timeout;
        _stream = new NetworkStream(socket, ownsSocket: false);
    }

    public IPEndPoint Remote => (IPEndPoint)_socket.RemoteEndPoint!;

    public IPEndPoint Local => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Time the TCP connection took.</summary>
    public TimeSpan ConnectTime { get; private set; }

    /// <summary>Set once TLS is up.</summary>
    public TlsInfo? Tls { get; private set; }

    /// <summary>Opens a TCP connection, from <paramref name="bind"/> when given.</summary>
    /// <exception cref="SmtpProbeException">Refused, Timeout, Unreachable or Reset.</exception>
    public static async Task<SmtpProbe> ConnectAsync(IPAddress address, int port, TimeSpan timeout, IPAddress? bind = null, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var clock = Stopwatch.StartNew();
        try
        {
            if (bind is not null)
            {
                socket.Bind(new IPEndPoint(bind, 0));
            }
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            await socket.ConnectAsync(new IPEndPoint(address, port), cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new SmtpProbeException(ProbeFailure.Timeout, $"no answer from {Describe(address, port)} within {Seconds(timeout)}");
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new SmtpProbeException(Classify(e.SocketErrorCode), $"{Describe(address, port)}: {Words(e.SocketErrorCode, e.Message)}", e);
        }
        return new SmtpProbe(socket, timeout) { ConnectTime = clock.Elapsed };
    }

    /// <summary>Reads one reply (the greeting, or the answer to a command already sent).</summary>
    /// <exception cref="SmtpProbeException">Timeout, Closed, Reset or NotSmtp.</exception>
    public async Task<SmtpReply> ReadReplyAsync(CancellationToken cancellationToken = default)
    {
        var lines = new List<string>();
        int code = 0;
        // One deadline for the whole reply: a server that drips a byte at a time cannot stretch it.
        using var deadline = Deadline(cancellationToken);
        while (true)
        {
            var line = await ReadLineAsync(deadline.Token, cancellationToken).ConfigureAwait(false);
            if (line.Length < 3 || !int.TryParse(line.AsSpan(0, 3), out var c) || c < 200 || c > 599 || (line.Length > 3 && line[3] is not (' ' or '-')))
            {
                throw new SmtpProbeException(ProbeFailure.NotSmtp, $"not an SMTP reply: \"{Printable(line)}\"");
            }
            if (code != 0 && c != code)
            {
                throw new SmtpProbeException(ProbeFailure.NotSmtp, $"a multi-line reply changed its code: \"{Printable(line)}\"");
            }
            code = c;
            lines.Add(line.Length > 4 ? line[4..] : "");
            if (line.Length == 3 || line[3] == ' ')
            {
                break;
            }
            if (lines.Count > 1000)
            {
                throw new SmtpProbeException(ProbeFailure.NotSmtp, "a reply of more than 1000 lines");
            }
        }
        // RFC 3463 codes start the text of each line: keep the first, strip them all.
        string? enhanced = null;
        for (var i = 0; i < lines.Count; i++)
        {
            var space = lines[i].IndexOf(' ');
            var first = space < 0 ? lines[i] : lines[i][..space];
            if (IsEnhanced(first, code))
            {
                enhanced ??= first;
                lines[i] = space < 0 ? "" : lines[i][(space + 1)..];
            }
        }
        return new SmtpReply(code, enhanced, lines);
    }

    /// <summary>Sends one command line (CRLF added) and reads its reply.</summary>
    public async Task<SmtpReply> CommandAsync(string line, CancellationToken cancellationToken = default)
    {
        await WriteLineAsync(line, cancellationToken).ConfigureAwait(false);
        return await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes one line without waiting for a reply (for pipelining, or a QUIT that needs no answer).</summary>
    public async Task WriteLineAsync(string line, CancellationToken cancellationToken = default)
    {
        using var cts = Deadline(cancellationToken);
        try
        {
            await _stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), cts.Token).ConfigureAwait(false);
            await _stream.FlushAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw Broken(e);
        }
    }

    /// <summary>
    /// The TLS handshake, right after connecting (implicit TLS, port 465) or after a 220 to
    /// STARTTLS. The certificate is taken whatever it is and described in <see cref="Tls"/>.
    /// </summary>
    /// <exception cref="SmtpProbeException">Tls, with the handshake's own words.</exception>
    public async Task<TlsInfo> HandshakeAsync(string targetHost, CancellationToken cancellationToken = default)
    {
        if (_start != _end)
        {
            // Bytes before the handshake (the CVE-2011-0411 class on the server's side): not TLS.
            throw new SmtpProbeException(ProbeFailure.NotSmtp, "the server sent more after its reply to STARTTLS, before the TLS handshake");
        }
        SslPolicyErrors errors = SslPolicyErrors.None;
        X509ChainStatusFlags[] problems = [];
        List<X509Certificate2> chain = [];
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = targetHost,
            RemoteCertificateValidationCallback = (_, certificate, x509Chain, policyErrors) =>
            {
                errors = policyErrors;
                if (x509Chain is not null)
                {
                    chain = [.. x509Chain.ChainElements.Select(e => new X509Certificate2(e.Certificate))];
                    problems = [.. x509Chain.ChainStatus.Select(s => s.Status).Where(s => s != X509ChainStatusFlags.NoError).Distinct()];
                }
                return true; // described, not refused: deciding is the check's job
            },
        };
        using var cts = Deadline(cancellationToken);
        try
        {
            await ssl.AuthenticateAsClientAsync(options, cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new SmtpProbeException(ProbeFailure.Tls, e is OperationCanceledException ? $"the TLS handshake did not finish within {Seconds(_timeout)}" : $"TLS handshake failed: {Innermost(e)}", e);
        }
        _stream = ssl;
        var leaf = ssl.RemoteCertificate is X509Certificate2 c2 ? c2 : new X509Certificate2(ssl.RemoteCertificate!);
        Tls = new TlsInfo(ssl.SslProtocol, ssl.NegotiatedCipherSuite, leaf, chain.Count > 0 ? chain : [leaf], errors, problems);
        return Tls;
    }

    /// <summary>Says QUIT (politely, without waiting long) and closes.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await _stream.WriteAsync("QUIT\r\n"u8.ToArray(), cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // Already gone: nothing to say goodbye to.
        }
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
    }

    private async Task<string> ReadLineAsync(CancellationToken deadline, CancellationToken cancellationToken)
    {
        var line = new List<byte>();
        while (true)
        {
            var lf = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (lf >= 0)
            {
                line.AddRange(_buffer.AsSpan(_start, lf - _start));
                _start = lf + 1;
                if (line.Count > 0 && line[^1] == '\r')
                {
                    line.RemoveAt(line.Count - 1);
                }
                return Encoding.UTF8.GetString([.. line]);
            }
            line.AddRange(_buffer.AsSpan(_start, _end - _start));
            _start = _end = 0;
            if (line.Count > 4096)
            {
                throw new SmtpProbeException(ProbeFailure.NotSmtp, "a reply line of more than 4096 octets");
            }
            int read;
            try
            {
                read = await _stream.ReadAsync(_buffer, deadline).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw Broken(e);
            }
            if (read == 0)
            {
                throw new SmtpProbeException(ProbeFailure.Closed, line.Count == 0
                    ? "the server closed the connection without a word"
                    : $"the server closed the connection in the middle of a line: \"{Printable(Encoding.UTF8.GetString([.. line]))}\"");
            }
            _end = read;
        }
    }

    private CancellationTokenSource Deadline(CancellationToken cancellationToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(_timeout);
        return cts;
    }

    private SmtpProbeException Broken(Exception e) => e switch
    {
        OperationCanceledException => new SmtpProbeException(ProbeFailure.Timeout, $"no reply within {Seconds(_timeout)}", e),
        IOException { InnerException: SocketException s } => new SmtpProbeException(Classify(s.SocketErrorCode), Words(s.SocketErrorCode, s.Message), e),
        SocketException s => new SmtpProbeException(Classify(s.SocketErrorCode), Words(s.SocketErrorCode, s.Message), e),
        _ => new SmtpProbeException(ProbeFailure.Closed, e.Message, e),
    };

    private static ProbeFailure Classify(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => ProbeFailure.Refused,
        SocketError.TimedOut => ProbeFailure.Timeout,
        SocketError.ConnectionReset or SocketError.ConnectionAborted => ProbeFailure.Reset,
        SocketError.NetworkUnreachable or SocketError.HostUnreachable or SocketError.HostDown or SocketError.NetworkDown => ProbeFailure.Unreachable,
        _ => ProbeFailure.Closed,
    };

    private static string Words(SocketError error, string message) => error switch
    {
        SocketError.ConnectionRefused => "connection refused (nothing listens there, or a firewall rejects)",
        SocketError.ConnectionReset => "connection reset by the server",
        SocketError.TimedOut => "timed out",
        SocketError.NetworkUnreachable => "network unreachable (no route)",
        SocketError.HostUnreachable => "host unreachable",
        _ => message,
    };

    private static bool IsEnhanced(string s, int code)
    {
        var parts = s.Split('.');
        return parts.Length == 3 && parts[0].Length == 1 && parts[0][0] == (char)('0' + (code / 100))
            && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit));
    }

    private static string Innermost(Exception e)
    {
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }
        return e.Message;
    }

    internal static string Describe(IPAddress address, int port) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";

    internal static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.#} s";

    /// <summary>Control characters shown as \xNN, length bounded: server text goes into reports.</summary>
    internal static string Printable(string s)
    {
        var sb = new StringBuilder();
        foreach (var c in s.Length > 200 ? s[..200] : s)
        {
            sb.Append(char.IsControl(c) ? $"\\x{(int)c:x2}" : c);
        }
        return s.Length > 200 ? sb.Append('…').ToString() : sb.ToString();
    }
}
