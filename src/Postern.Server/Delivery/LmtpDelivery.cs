using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>
/// Hands local mail to an LMTP server (RFC 2033), such as Dovecot's, instead of writing the Maildir
/// (Delivery.Lmtp), so that its Sieve filters, vacation replies and quotas apply. One transaction per
/// message: LHLO, MAIL FROM (with SIZE, BODY and SMTPUTF8 when offered), one RCPT per account, DATA
/// with the spooled message streamed from its file, dot-stuffed (RFC 5321 §4.5.2), and then one
/// reply per accepted recipient (RFC 2033 §4.2): each decides for that recipient alone, as the
/// replies of a remote server do (2xx delivered, 4xx deferred, 5xx bounced; see
/// <see cref="SmtpDeliveryClient.Outcome"/>). A connection that cannot be made, or breaks, defers
/// every recipient not yet decided.
/// </summary>
public sealed class LmtpDelivery
{
    private const int MaxLine = 4096;
    private readonly EndPoint _endpoint;
    private readonly string _hostname;
    private readonly TimeSpan _timeout;

    /// <param name="endpoint">Delivery.Lmtp: unix:/path, /path or host:port.</param>
    /// <param name="hostname">The LHLO name.</param>
    /// <param name="timeout">For the connection and for each reply (the one after DATA's dot too).</param>
    public LmtpDelivery(string endpoint, string hostname, TimeSpan? timeout = null)
    {
        if (!TryParseEndpoint(endpoint, out var parsed))
        {
            throw new ArgumentException($"Delivery.Lmtp '{endpoint}' is not unix:/path or host:port", nameof(endpoint));
        }
        _endpoint = parsed!;
        _hostname = hostname;
        _timeout = timeout ?? TimeSpan.FromMinutes(5);
        Relay = parsed is UnixDomainSocketEndPoint ? endpoint.StartsWith("unix:", StringComparison.Ordinal) ? endpoint[5..] : endpoint : endpoint;
    }

    /// <summary>The socket path or host:port, as log lines name the relay.</summary>
    public string Relay { get; }

    /// <summary>unix:/path or /path (a unix socket), or host:port (TCP; an IP address or a name).</summary>
    public static bool TryParseEndpoint(string text, out EndPoint? endpoint)
    {
        endpoint = null;
        var path = text.StartsWith("unix:", StringComparison.Ordinal) ? text[5..] : text;
        if (path.StartsWith('/'))
        {
            endpoint = new UnixDomainSocketEndPoint(path);
            return true;
        }
        if (IPEndPoint.TryParse(text, out var ip) && ip.Port > 0 && (text.Contains("]:", StringComparison.Ordinal) || text.Count(c => c == ':') == 1))
        {
            endpoint = ip;
            return true;
        }
        var colon = text.LastIndexOf(':');
        if (colon > 0 && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            && Uri.CheckHostName(text[..colon]) == UriHostNameType.Dns)
        {
            endpoint = new DnsEndPoint(text[..colon], port);
            return true;
        }
        return false;
    }

    /// <summary>
    /// Delivers <paramref name="message"/> to <paramref name="recipients"/> (accounts), with
    /// <paramref name="header"/> (trace fields made here, CRLF-terminated) on top; the outcome of each, in the order given.
    /// </summary>
    public async Task<IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)>> DeliverAsync(
        SpooledMessage message, IReadOnlyList<string> recipients, string? header, CancellationToken cancellationToken = default)
    {
        var via = Via();
        var outcomes = new DeliveryOutcome?[recipients.Count];
        List<(string, DeliveryOutcome)> Result(DeliveryOutcome rest) =>
            recipients.Select((r, i) => (r, (outcomes[i] ?? rest) with { Via = via })).ToList();
        DeliveryOutcome Reply(Reply reply) => SmtpDeliveryClient.Outcome(reply.Code, reply.Text);

        using var socket = new Socket(_endpoint.AddressFamily == AddressFamily.Unspecified ? AddressFamily.InterNetwork : _endpoint.AddressFamily,
            SocketType.Stream, _endpoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        try
        {
            using (var connecting = Deadline(cancellationToken))
            {
                await socket.ConnectAsync(_endpoint, connecting.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            var why = e is OperationCanceledException ? $"no connection within {_timeout.TotalSeconds:0} s"
                : _endpoint is UnixDomainSocketEndPoint && !File.Exists(Relay) ? "no such socket (is the LMTP server running, and is this its path?)"
                : e.Message;
            return Result(new DeliveryOutcome.Deferred($"cannot connect to the LMTP server {Relay} (Delivery.Lmtp): {why}"));
        }
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var session = new Session(stream, this, cancellationToken);
        try
        {
            var greeting = await session.ReadAsync().ConfigureAwait(false);
            if (greeting.Code != 220)
            {
                return Result(new DeliveryOutcome.Deferred($"LMTP server {Relay} (Delivery.Lmtp) greeted with {greeting}"));
            }
            var lhlo = await session.CommandAsync($"LHLO {_hostname}").ConfigureAwait(false);
            if (lhlo.Code != 250)
            {
                return Result(new DeliveryOutcome.Deferred($"LMTP server {Relay} (Delivery.Lmtp) refused LHLO: {lhlo}"));
            }
            var offers = lhlo.Lines.Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(w => w.Length > 0)
                .ToDictionary(w => w[0].ToUpperInvariant(), w => w.Skip(1).ToArray(), StringComparer.Ordinal);
            if (offers.TryGetValue("SIZE", out var max) && max.Length > 0 && long.TryParse(max[0], CultureInfo.InvariantCulture, out var limit) && limit > 0
                && message.MessageLength > limit)
            {
                return Result(new DeliveryOutcome.Bounced($"552 5.3.4 Message too big for the LMTP server {Relay} ({message.MessageLength} > {limit} octets)"));
            }
            if (message.Envelope.SmtpUtf8 && !offers.ContainsKey("SMTPUTF8"))
            {
                return Result(new DeliveryOutcome.Bounced($"553 5.6.7 The LMTP server {Relay} does not support SMTPUTF8, which this message needs"));
            }
            var mail = new StringBuilder($"MAIL FROM:<{message.Envelope.From}>");
            if (offers.ContainsKey("SIZE"))
            {
                mail.Append(CultureInfo.InvariantCulture, $" SIZE={message.MessageLength + Encoding.UTF8.GetByteCount(header ?? "")}");
            }
            if (message.Envelope.Body == "8BITMIME" && offers.ContainsKey("8BITMIME"))
            {
                mail.Append(" BODY=8BITMIME");
            }
            if (message.Envelope.SmtpUtf8)
            {
                mail.Append(" SMTPUTF8");
            }
            var from = await session.CommandAsync(mail.ToString()).ConfigureAwait(false);
            if (from.Code != 250)
            {
                return Result(Reply(from));
            }
            var accepted = new List<int>();
            for (var i = 0; i < recipients.Count; i++)
            {
                var rcpt = await session.CommandAsync($"RCPT TO:<{recipients[i]}>").ConfigureAwait(false);
                if (rcpt.Code is >= 200 and < 300)
                {
                    accepted.Add(i);
                }
                else
                {
                    outcomes[i] = Reply(rcpt);
                }
            }
            if (accepted.Count == 0)
            {
                await session.QuitAsync().ConfigureAwait(false);
                return Result(new DeliveryOutcome.Deferred("no recipient accepted"));
            }
            var data = await session.CommandAsync("DATA").ConfigureAwait(false);
            if (data.Code != 354)
            {
                return Result(Reply(data));
            }
            await using (var content = Spool.OpenMessage(message))
            {
                await session.SendDataAsync(header, content).ConfigureAwait(false);
            }
            // RFC 2033 §4.2: after the final dot, one reply for each recipient RCPT accepted, in that order.
            foreach (var i in accepted)
            {
                var reply = await session.ReadAsync().ConfigureAwait(false);
                outcomes[i] = reply.Code is >= 200 and < 300
                    ? new DeliveryOutcome.Delivered($"{Relay}: {reply}")
                    : Reply(reply);
            }
            await session.QuitAsync().ConfigureAwait(false);
            return Result(new DeliveryOutcome.Deferred("no reply"));
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidDataException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // Those the server has already answered keep their outcome; the others wait for a retry.
            var why = e is OperationCanceledException ? $"no reply within {_timeout.TotalSeconds:0} s" : SmtpDeliveryClient.FirstLine(e.Message);
            return Result(new DeliveryOutcome.Deferred($"LMTP server {Relay} (Delivery.Lmtp): {why}"));
        }
    }

    private Hop Via() => _endpoint switch
    {
        IPEndPoint ip => new Hop(Relay, ip.Address, ip.Port, null),
        DnsEndPoint dns => new Hop(dns.Host, null, dns.Port, null),
        _ => new Hop(Relay, null, 0, null),
    };

    private CancellationTokenSource Deadline(CancellationToken cancellationToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(_timeout);
        return cts;
    }

    /// <summary>One reply: its code and the text of each line (without the code).</summary>
    private sealed record Reply(int Code, IReadOnlyList<string> Lines)
    {
        public string Text => string.Join(" ", Lines);

        public override string ToString() => $"{Code} {Text}";
    }

    /// <summary>The client side of one connection: replies read with a deadline each, bounded in size.</summary>
    private sealed class Session(Stream stream, LmtpDelivery owner, CancellationToken cancellationToken)
    {
        private readonly byte[] _buffer = new byte[8192];
        private int _start;
        private int _end;

        public async Task<Reply> CommandAsync(string line)
        {
            using (var cts = owner.Deadline(cancellationToken))
            {
                await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), cts.Token).ConfigureAwait(false);
            }
            return await ReadAsync().ConfigureAwait(false);
        }

        public async Task QuitAsync()
        {
            try
            {
                await CommandAsync("QUIT").ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or InvalidDataException or OperationCanceledException)
            {
                // Every outcome is known; the connection is dropped anyway.
            }
        }

        /// <summary>Reads one reply, multi-line or not, within the timeout.</summary>
        public async Task<Reply> ReadAsync()
        {
            using var cts = owner.Deadline(cancellationToken);
            var lines = new List<string>();
            var code = 0;
            while (true)
            {
                var line = await ReadLineAsync(cts.Token).ConfigureAwait(false);
                if (line.Length < 3 || !int.TryParse(line.AsSpan(0, 3), NumberStyles.None, CultureInfo.InvariantCulture, out var c) || c < 200 || c > 599
                    || (line.Length > 3 && line[3] is not (' ' or '-')) || (code != 0 && c != code) || lines.Count > 100)
                {
                    throw new InvalidDataException($"not an LMTP reply: \"{line[..Math.Min(line.Length, 200)]}\"");
                }
                code = c;
                lines.Add(line.Length > 4 ? line[4..] : "");
                if (line.Length == 3 || line[3] == ' ')
                {
                    return new Reply(code, lines);
                }
            }
        }

        private async Task<string> ReadLineAsync(CancellationToken token)
        {
            var line = new List<byte>();
            while (true)
            {
                if (_start == _end)
                {
                    _start = 0;
                    _end = await stream.ReadAsync(_buffer, token).ConfigureAwait(false);
                    if (_end == 0)
                    {
                        throw new IOException("the LMTP server closed the connection");
                    }
                }
                var b = _buffer[_start++];
                if (b == '\n')
                {
                    if (line.Count > 0 && line[^1] == '\r')
                    {
                        line.RemoveAt(line.Count - 1);
                    }
                    return Encoding.UTF8.GetString([.. line]);
                }
                if (line.Count >= MaxLine)
                {
                    throw new InvalidDataException($"a reply line longer than {MaxLine} octets");
                }
                line.Add(b);
            }
        }

        /// <summary>
        /// The message as DATA content: <paramref name="header"/>, then the spool file in pieces,
        /// each line ending CRLF (a bare CR or LF becomes CRLF: RFC 5321 §2.3.8), a line starting
        /// with "." getting another (§4.5.2), and the final ".".
        /// </summary>
        public async Task SendDataAsync(string? header, Stream content)
        {
            var output = new DotStuffer(stream);
            using (var cts = owner.Deadline(cancellationToken))
            {
                if (header is { Length: > 0 })
                {
                    await output.WriteAsync(Encoding.UTF8.GetBytes(header), cts.Token).ConfigureAwait(false);
                }
            }
            var buffer = new byte[64 * 1024];
            int n;
            while ((n = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                // A deadline per piece: a stalled server cannot hold the worker for longer.
                using var cts = owner.Deadline(cancellationToken);
                await output.WriteAsync(buffer.AsMemory(0, n), cts.Token).ConfigureAwait(false);
            }
            using var end = owner.Deadline(cancellationToken);
            await output.EndAsync(end.Token).ConfigureAwait(false);
        }
    }

    /// <summary>Writes message lines with CRLF endings and dot-stuffing, keeping only the state between pieces.</summary>
    internal sealed class DotStuffer(Stream output)
    {
        // At most 3 octets out per octet in (a CR, then ".": LF, ".", ".").
        private readonly byte[] _out = new byte[3 * 64 * 1024 + 8];
        private bool _lineStart = true;
        private bool _afterCr;

        public async Task WriteAsync(ReadOnlyMemory<byte> piece, CancellationToken token)
        {
            for (var offset = 0; offset < piece.Length; offset += 64 * 1024)
            {
                var n = Stuff(piece.Span.Slice(offset, Math.Min(64 * 1024, piece.Length - offset)));
                await output.WriteAsync(_out.AsMemory(0, n), token).ConfigureAwait(false);
            }
        }

        /// <summary>Ends the last line when it had no line break, then ".".</summary>
        public async Task EndAsync(CancellationToken token)
        {
            var tail = _afterCr ? "\n.\r\n" : _lineStart ? ".\r\n" : "\r\n.\r\n";
            await output.WriteAsync(Encoding.ASCII.GetBytes(tail), token).ConfigureAwait(false);
            await output.FlushAsync(token).ConfigureAwait(false);
        }

        private int Stuff(ReadOnlySpan<byte> input)
        {
            var n = 0;
            foreach (var b in input)
            {
                if (_afterCr)
                {
                    _afterCr = false;
                    _out[n++] = (byte)'\n';
                    _lineStart = true;
                    if (b == '\n')
                    {
                        continue; // CRLF: already written
                    }
                }
                if (b == '\r')
                {
                    _out[n++] = b;
                    _afterCr = true;
                    continue;
                }
                if (b == '\n')
                {
                    // A bare LF: CRLF on the wire.
                    _out[n++] = (byte)'\r';
                    _out[n++] = (byte)'\n';
                    _lineStart = true;
                    continue;
                }
                if (_lineStart && b == '.')
                {
                    _out[n++] = (byte)'.';
                }
                _lineStart = false;
                _out[n++] = b;
            }
            return n;
        }
    }
}
