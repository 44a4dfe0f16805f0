using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Postern.Server.Configuration;

namespace Postern.Server.Filters.Rspamd;

/// <summary>
/// Asks rspamd's normal worker about one message over its HTTP protocol (<c>POST /checkv2</c>,
/// rspamd's "protocol" document) and turns the reply into a <see cref="RspamdVerdict"/>. The message
/// streams from the caller's stream with its Content-Length, never held whole in memory; the reply
/// is bounded (<see cref="MaxReplySize"/>), and the whole exchange by Rspamd.Timeout on the injected
/// clock. A down, slow or confused rspamd is a verdict (Unavailable), never an exception: only the
/// caller's own cancellation throws. One instance serves every session at once (HttpClient's pool);
/// a reload makes a new one.
/// </summary>
public sealed class RspamdClient : IDisposable
{
    /// <summary>The largest reply read: a real one is a few KiB, tens with many symbols and headers.</summary>
    public const int MaxReplySize = 1024 * 1024;

    private readonly RspamdOptions _options;
    private readonly string? _mtaName;
    private readonly TimeProvider _time;
    private readonly HttpClient _http;
    private readonly Uri? _checkUri;
    private int _down;

    /// <param name="options">The Rspamd section.</param>
    /// <param name="mtaName">This server's Hostname, sent as MTA-Name (rspamd's authserv-id in the Authentication-Results it may add).</param>
    /// <param name="time">The server's clock: the timeout runs on it.</param>
    /// <param name="handler">Tests only: another transport. Default: a SocketsHttpHandler without proxy or redirects.</param>
    public RspamdClient(RspamdOptions options, string? mtaName, TimeProvider time, HttpMessageHandler? handler = null)
    {
        _options = options;
        _mtaName = string.IsNullOrEmpty(mtaName) ? null : mtaName;
        _time = time;
        if (!string.IsNullOrEmpty(options.Url))
        {
            var baseUri = new Uri(options.Url.EndsWith('/') ? options.Url : options.Url + "/", UriKind.Absolute);
            _checkUri = new Uri(baseUri, "checkv2");
        }
        handler ??= new SocketsHttpHandler
        {
            // The scanner is ours, next to us: an HTTP_PROXY in the environment must not catch it.
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.Timeout,
            MaxResponseHeadersLength = 64, // KiB
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            // Addresses under SMTPUTF8 are UTF-8; rspamd reads its headers as UTF-8.
            RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8,
        };
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>Whether rspamd is configured at all (Rspamd.Url set).</summary>
    public bool Enabled => _checkUri is not null;

    /// <summary>True from an Unavailable verdict until rspamd answers again.</summary>
    public bool IsDown => Volatile.Read(ref _down) == 1;

    /// <summary>
    /// Whether a message of <paramref name="size"/> octets on a <paramref name="role"/> listener is
    /// scanned: null when it is, else the Skipped verdict to use (rspamd off, submission not checked,
    /// too large). The session can ask before it opens the spool file.
    /// </summary>
    public RspamdVerdict? Skip(ListenerRole role, long size)
    {
        if (!Enabled)
        {
            return RspamdVerdict.Skipped("rspamd is off (no Rspamd.Url)");
        }
        if (role != ListenerRole.Mx && !_options.CheckSubmission)
        {
            return RspamdVerdict.Skipped("submission is not scanned (Rspamd.CheckSubmission)");
        }
        if (size > _options.MaxMessageSize)
        {
            return RspamdVerdict.Skipped($"{size} octets is over Rspamd.MaxMessageSize ({_options.MaxMessageSize})");
        }
        return null;
    }

    /// <summary>Scans the file at <paramref name="path"/> (the spool file), read as it streams.</summary>
    public async Task<RspamdVerdict> CheckFileAsync(RspamdRequest request, string path, CancellationToken cancellationToken)
    {
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Our own file: not rspamd's outage, but the message cannot be scanned either.
            return RspamdVerdict.Unavailable($"cannot read {path}: {e.Message}", _options.FailOpen, TimeSpan.Zero, outageStarted: false);
        }
        await using (file)
        {
            return await CheckAsync(request, file, file.Length, cancellationToken);
        }
    }

    /// <summary>
    /// Scans <paramref name="length"/> octets of <paramref name="message"/> from its position (the
    /// message as it will be queued, CRLF line ends, not dot-stuffed). The stream is read, not disposed.
    /// Skip rules (<see cref="Skip"/>) apply here too.
    /// </summary>
    public async Task<RspamdVerdict> CheckAsync(RspamdRequest request, Stream message, long length, CancellationToken cancellationToken)
    {
        if (Skip(request.Role, length) is { } skipped)
        {
            return skipped;
        }
        var started = _time.GetTimestamp();
        using var timeout = new CancellationTokenSource(_options.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var http = new HttpRequestMessage(HttpMethod.Post, _checkUri) { Content = new MessageContent(message, length) };
            AddHeaders(http.Headers, request);
            using var response = await _http.SendAsync(http, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            if (response.Content.Headers.ContentLength > MaxReplySize)
            {
                return Down($"reply of {response.Content.Headers.ContentLength} octets is over {MaxReplySize}", started);
            }
            await using var body = await response.Content.ReadAsStreamAsync(linked.Token);
            var bytes = await ReadBoundedAsync(body, MaxReplySize, linked.Token);
            if (bytes is null)
            {
                return Down($"reply is over {MaxReplySize} octets", started);
            }
            if (response.StatusCode != HttpStatusCode.OK)
            {
                var text = Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, 200)).ReplaceLineEndings(" ");
                return Down($"HTTP {(int)response.StatusCode}: {text}", started);
            }
            RspamdReply reply;
            try
            {
                reply = RspamdReply.Parse(bytes);
            }
            catch (FormatException e)
            {
                return Down($"malformed reply: {e.Message}", started);
            }
            Volatile.Write(ref _down, 0);
            return RspamdVerdict.From(reply, _options.Headers, _time.GetElapsedTime(started));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Down($"no reply within {_options.Timeout.TotalSeconds:0.###} s (Rspamd.Timeout)", started);
        }
        catch (HttpRequestException e)
        {
            return Down(e.InnerException is { } inner && inner.Message != e.Message ? $"{e.Message} ({inner.Message})" : e.Message, started);
        }
        catch (IOException e)
        {
            return Down(e.Message, started);
        }
    }

    private RspamdVerdict Down(string why, long started) =>
        RspamdVerdict.Unavailable(why, _options.FailOpen, _time.GetElapsedTime(started), outageStarted: Interlocked.Exchange(ref _down, 1) == 0);

    private void AddHeaders(HttpRequestHeaders h, RspamdRequest r)
    {
        if (r.ClientAddress is { } ip)
        {
            Set(h, "Ip", (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip).ToString());
        }
        Set(h, "Helo", r.Helo);
        Set(h, "Hostname", r.ClientHostname);
        if (r.MailFrom is not null)
        {
            Set(h, "From", r.MailFrom.Length == 0 ? "<>" : r.MailFrom);
        }
        // HttpClient writes the values of one name on one line joined by ", "; rspamd splits Rcpt at commas.
        var recipients = r.Recipients.Select(Clean).Where(v => v.Length > 0).ToList();
        if (recipients.Count > 0)
        {
            h.TryAddWithoutValidation("Rcpt", recipients);
        }
        Set(h, "Queue-Id", r.QueueId);
        Set(h, "User", r.User);
        Set(h, "Settings-ID", r.Role == ListenerRole.Mx ? _options.SettingsIdMx : _options.SettingsIdSubmission);
        Set(h, "MTA-Name", _mtaName);
        Set(h, "TLS-Cipher", r.TlsCipher);
        Set(h, "TLS-Version", r.TlsVersion);
        if (r.PassAll)
        {
            Set(h, "Pass", "all");
        }
    }

    private static void Set(HttpRequestHeaders h, string name, string? value)
    {
        if (!string.IsNullOrEmpty(value) && Clean(value) is { Length: > 0 } clean)
        {
            h.TryAddWithoutValidation(name, clean);
        }
    }

    // Values come from a session that has parsed them already; still, nothing may end the header line.
    private static string Clean(string value) =>
        value.Any(char.IsControl) ? new string(value.Select(c => char.IsControl(c) ? ' ' : c).ToArray()).Trim() : value.Trim();

    /// <summary>Reads to the end, or returns null past <paramref name="max"/> octets.</summary>
    private static async Task<byte[]?> ReadBoundedAsync(Stream s, int max, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        var used = 0;
        while (true)
        {
            if (used == buffer.Length)
            {
                if (buffer.Length > max)
                {
                    return null;
                }
                Array.Resize(ref buffer, Math.Min(buffer.Length * 2, max + 1));
            }
            var n = await s.ReadAsync(buffer.AsMemory(used), ct);
            if (n == 0)
            {
                return used > max ? null : buffer[..used];
            }
            used += n;
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>
    /// The message as the request body: exactly <c>length</c> octets copied from the caller's
    /// stream as rspamd reads them (so Content-Length never lies), the stream left open.
    /// </summary>
    private sealed class MessageContent(Stream message, long length) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            var buffer = new byte[64 * 1024];
            var left = length;
            while (left > 0)
            {
                var n = await message.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), cancellationToken);
                if (n == 0)
                {
                    throw new IOException($"the message ended {left} octets before its length");
                }
                await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                left -= n;
            }
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override bool TryComputeLength(out long computed)
        {
            computed = length;
            return true;
        }
    }
}
