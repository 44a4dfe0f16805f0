using System.Net;
using System.Net.Sockets;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A listening socket whose accept queue is full: it never accepts, and Linux drops the SYNs of
/// further connections (tcp_abort_on_overflow is off by default), so a connect times out as it
/// does through a firewall that drops packets.
/// </summary>
internal sealed class FullAcceptQueue : IDisposable
{
    private readonly Socket _listener;
    private readonly List<Socket> _fillers = [];

    private FullAcceptQueue(Socket listener) => _listener = listener;

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    public static async Task<FullAcceptQueue> StartAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var q = new FullAcceptQueue(listener);
        // Fill the queue (backlog 1 holds two) until a connect no longer completes.
        for (var i = 0; i < 16; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            using var cts = new CancellationTokenSource(300);
            try
            {
                await s.ConnectAsync(listener.LocalEndPoint!, cts.Token);
                q._fillers.Add(s);
            }
            catch (OperationCanceledException)
            {
                s.Dispose();
                return q;
            }
        }
        q.Dispose();
        throw new InvalidOperationException("the accept queue never filled: this kernel answers every SYN (tcp_abort_on_overflow?)");
    }

    public void Dispose()
    {
        _fillers.ForEach(s => s.Dispose());
        _listener.Dispose();
    }
}
