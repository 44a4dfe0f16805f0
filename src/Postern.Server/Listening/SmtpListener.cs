using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Postern.Protocol.Parsing;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Limits;
using Postern.Server.Logging;
using Postern.Server.Smtp;

namespace Postern.Server.Listening;

/// <summary>
/// Accepts connections on one endpoint and runs a session for each. On a listener with
/// <see cref="ListenerOptions.ProxyProtocol"/>, a connection must come from one of its
/// <see cref="ListenerOptions.TrustedProxies"/> and start with a PROXY header, which is read (and
/// nothing after it) before anything else happens: the client it names is then the one the
/// connection limits, the session, the logs and the Received header see. Any other connection is
/// closed without a byte sent, and logged (event=proxy_refused). Open connections are capped per
/// client across listeners (<see cref="ConnectionLimiter"/>) and per listener (<see cref="ListenerSlots"/>,
/// which sheds idle sessions to make room).
/// </summary>
public sealed class SmtpListener(ServerContext ctx, ListenerOptions options, ConnectionLimiter limiter, SessionTracker sessions, ListenerSlots slots)
{
    /// <summary>
    /// How long a proxy may take to send its header. proxy-protocol.txt §2 suggests "a few seconds
    /// (at least 3 seconds to cover a TCP retransmit)"; a proxy sends it at once with the connection.
    /// </summary>
    public static readonly TimeSpan ProxyHeaderTimeout = TimeSpan.FromSeconds(5);

    private static long _sessionCounter;
    private readonly IReadOnlyList<IPNetwork> _trustedProxies = options.TrustedProxies.Select(n => IPNetwork.Parse(n)).ToList();
    private Socket? _socket;

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket!.LocalEndPoint!;

    /// <summary>Listens on a bound socket (<see cref="ListenerSocket.Bind"/>) and serves on it.</summary>
    public void Use(Socket bound)
    {
        bound.Listen(512);
        _socket = bound;
    }

    /// <summary>Accepts until <paramref name="stop"/> fires.</summary>
    public async Task AcceptLoopAsync(CancellationToken stop)
    {
        using var registration = stop.Register(() => _socket?.Close());
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket!.AcceptAsync(stop);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // Out of file descriptors or the like: do not spin; try again shortly.
                await Task.Delay(100, CancellationToken.None);
                continue;
            }
            _ = Task.Run(() => HandleAsync(client), CancellationToken.None);
        }
    }

    private async Task HandleAsync(Socket client)
    {
        var remote = (IPEndPoint)client.RemoteEndPoint!;
        var id = Interlocked.Increment(ref _sessionCounter).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        client.NoDelay = true;
        if (options.ProxyProtocol)
        {
            // Before the limiter: the per-IP count is of the real client, not of the proxy.
            var proxied = await ReadProxyHeaderAsync(client, remote, id);
            if (proxied is null)
            {
                client.Dispose();
                return;
            }
            remote = proxied;
        }
        var ip = Unmapped(remote.Address);
        var network = new NetworkStream(client, ownsSocket: true);
        var verdict = limiter.TryAcquire(ip);
        if (verdict != ConnectionLimiter.Result.Accepted)
        {
            await RefuseAsync(network, id, ip, Reply.TooManyConnectionsFromIp);
            await network.DisposeAsync();
            return;
        }
        var session = new SmtpSession(ctx, options, network, remote, id);
        var admission = slots.TryAdmit(session);
        foreach (var (victim, idle, why) in admission.Shed)
        {
            Log.ConnectionShed(ctx.Logger, victim.Id, options.Name, victim.ClientIp.ToString(), (long)idle.TotalSeconds, slots.Open, slots.Cap, why);
            Metrics.Connections.Add(1, new("listener", options.Name), new("result", "shed"));
            victim.Shed();
        }
        if (!admission.Admitted)
        {
            try
            {
                // Full, and every session is working: the newcomer waits for another day.
                await RefuseAsync(network, id, ip, Reply.TooManyConnections);
            }
            finally
            {
                limiter.Release(ip);
                await session.DisposeAsync();
            }
            return;
        }
        Log.Connect(ctx.Logger, id, options.Name, ip.ToString(), remote.Port);
        Metrics.Connections.Add(1, new("listener", options.Name), new("result", "accepted"));
        Metrics.OpenSessions.Add(1, new KeyValuePair<string, object?>("listener", options.Name));
        var done = sessions.Add();
        try
        {
            await session.RunAsync();
        }
        finally
        {
            try
            {
                await session.DisposeAsync();
            }
            finally
            {
                // Whatever the teardown did, the slot is given back (a leaked slot is a lockout).
                slots.Release(session);
                limiter.Release(ip);
                Metrics.OpenSessions.Add(-1, new KeyValuePair<string, object?>("listener", options.Name));
                done.Dispose();
            }
        }
    }

    /// <summary>Answers a connection that gets no session (421 4.7.0) and logs it; the caller closes it.</summary>
    private async Task RefuseAsync(NetworkStream network, string id, IPAddress ip, SmtpReply reply)
    {
        Log.ConnectionRefused(ctx.Logger, id, options.Name, ip.ToString(), reply.Code, RefusalReason.ConnectionLimit.Word(), reply.Text);
        Metrics.Connections.Add(1, new("listener", options.Name), new("result", "refused"));
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await network.WriteAsync(reply.ToBytes(), cts.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private static IPAddress Unmapped(IPAddress a) => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a;

    /// <summary>
    /// Reads the PROXY header of a connection, exactly: never a byte past it, so that what the client
    /// sends next is read by the session. Returns the client's endpoint (the proxy's own for LOCAL
    /// and UNKNOWN, per proxy-protocol.txt §2.1 and §2.2), or null once the connection is refused
    /// and logged: its peer is not a trusted proxy, or the header is malformed, late or cut short.
    /// </summary>
    private async Task<IPEndPoint?> ReadProxyHeaderAsync(Socket client, IPEndPoint peer, string id)
    {
        var peerIp = Unmapped(peer.Address);
        string reason;
        if (!_trustedProxies.Any(n => n.Contains(peerIp)))
        {
            // Checked before reading: a header from anyone else would let them choose their address.
            reason = "not a trusted proxy";
        }
        else
        {
            var buffer = ArrayPool<byte>.Shared.Rent(ProxyHeader.MaxLength);
            try
            {
                using var timeout = new CancellationTokenSource(ProxyHeaderTimeout, ctx.Time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, ctx.ShuttingDown);
                var filled = 0;
                while (true)
                {
                    var result = ProxyHeader.TryParse(buffer.AsSpan(0, filled));
                    if (result.Status == ProxyHeaderStatus.Complete)
                    {
                        var header = result.Header!;
                        var real = header.Source ?? peer;
                        Log.Proxy(ctx.Logger, id, options.Name, peerIp.ToString(), Unmapped(real.Address).ToString(), real.Port,
                            header.Version, header.Source is null ? (header.Command == ProxyCommand.Local ? "local" : "unknown") : "proxy");
                        return real;
                    }
                    if (result.Status == ProxyHeaderStatus.Invalid)
                    {
                        reason = $"bad PROXY header: {result.Error}";
                        break;
                    }
                    int n;
                    try
                    {
                        n = await client.ReceiveAsync(buffer.AsMemory(filled, result.Wanted), SocketFlags.None, linked.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        reason = ctx.ShuttingDown.IsCancellationRequested
                            ? "shutting down"
                            : $"no complete PROXY header within {ProxyHeaderTimeout.TotalSeconds:0} s";
                        break;
                    }
                    catch (SocketException e)
                    {
                        reason = $"connection lost before the PROXY header ({e.SocketErrorCode})";
                        break;
                    }
                    if (n == 0)
                    {
                        reason = filled == 0 ? "closed before sending a PROXY header" : "closed in the middle of the PROXY header";
                        break;
                    }
                    filled += n;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        // Nothing is sent: the peer has not reached SMTP, and a reply would only tell a stranger
        // what listens here. proxy-protocol.txt §2.1 asks for the connection to be aborted at once.
        Log.ProxyRefused(ctx.Logger, id, options.Name, peerIp.ToString(), reason);
        Metrics.Connections.Add(1, new("listener", options.Name), new("result", "refused"));
        return null;
    }
}

/// <summary>Counts running sessions so that shutdown can wait for them.</summary>
public sealed class SessionTracker
{
    private int _count;
    private TaskCompletionSource _idle = NewIdle(true);

    private static TaskCompletionSource NewIdle(bool done)
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (done)
        {
            t.SetResult();
        }
        return t;
    }

    public int Count => Volatile.Read(ref _count);

    public IDisposable Add()
    {
        lock (this)
        {
            if (_count++ == 0)
            {
                _idle = NewIdle(false);
            }
        }
        return new Handle(this);
    }

    public Task WhenIdle()
    {
        lock (this)
        {
            return _idle.Task;
        }
    }

    private void Remove()
    {
        lock (this)
        {
            if (--_count == 0)
            {
                _idle.TrySetResult();
            }
        }
    }

    private sealed class Handle(SessionTracker owner) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Remove();
            }
        }
    }
}
