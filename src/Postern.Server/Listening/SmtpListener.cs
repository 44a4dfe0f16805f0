using System.Net;
using System.Net.Sockets;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Limits;
using Postern.Server.Logging;
using Postern.Server.Smtp;

namespace Postern.Server.Listening;

/// <summary>Accepts connections on one endpoint and runs a session for each.</summary>
public sealed class SmtpListener(ServerContext ctx, ListenerOptions options, ConnectionLimiter limiter, SessionTracker sessions)
{
    private static long _sessionCounter;
    private Socket? _socket;

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket!.LocalEndPoint!;

    public void Bind()
    {
        var endpoint = IPEndPoint.Parse(options.Endpoint);
        _socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        if (endpoint.AddressFamily == AddressFamily.InterNetworkV6 && endpoint.Address.Equals(IPAddress.IPv6Any))
        {
            _socket.DualMode = true;
        }
        _socket.Bind(endpoint);
        _socket.Listen(512);
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
        var ip = remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address;
        var id = Interlocked.Increment(ref _sessionCounter).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        client.NoDelay = true;
        var network = new NetworkStream(client, ownsSocket: true);
        var verdict = limiter.TryAcquire(ip);
        if (verdict != ConnectionLimiter.Result.Accepted)
        {
            var reply = verdict == ConnectionLimiter.Result.TooManyTotal ? Reply.TooManyConnections : Reply.TooManyConnectionsFromIp;
            Log.ConnectionRefused(ctx.Logger, id, options.Name, ip.ToString(), reply.Code, reply.Text);
            Metrics.Connections.Add(1, new("listener", options.Name), new("result", "refused"));
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await network.WriteAsync(reply.ToBytes(), cts.Token);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
            }
            await network.DisposeAsync();
            return;
        }
        Log.Connect(ctx.Logger, id, options.Name, ip.ToString(), remote.Port);
        Metrics.Connections.Add(1, new("listener", options.Name), new("result", "accepted"));
        Metrics.OpenSessions.Add(1, new KeyValuePair<string, object?>("listener", options.Name));
        var session = new SmtpSession(ctx, options, network, remote, id);
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
                limiter.Release(ip);
                Metrics.OpenSessions.Add(-1, new KeyValuePair<string, object?>("listener", options.Name));
                done.Dispose();
            }
        }
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
