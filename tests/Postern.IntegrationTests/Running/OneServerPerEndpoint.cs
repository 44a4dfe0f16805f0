using System.Net;
using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;
using Postern.Server.Listening;

namespace Postern.IntegrationTests.Running;

/// <summary>
/// Issue 11 item 5: listening sockets are exclusive. .NET's ReuseAddress also sets SO_REUSEPORT on
/// Linux, so a second server with another data directory used to start on the same port, and the
/// kernel split incoming mail between the two. Now the second fails at start naming the endpoint.
/// </summary>
public sealed class OneServerPerEndpoint
{
    [Fact]
    public async Task ASecondServerOnTheSameEndpointFailsNamingItAndTheHolder()
    {
        var first = TestServer.NewDataDir();
        using var running = await PosternProcess.StartAsync(first, TimeSpan.FromSeconds(60));
        using var second = PosternCli.WithConfig(change: c => c["Listeners"] = new[] { new Dictionary<string, string> { ["Endpoint"] = $"{running.Host}:{running.Port}" } });

        var serve = await second.RunAsync("serve");
        Assert.True(serve.ExitCode == 2, serve.ToString());
        Assert.Equal($"postern: cannot start: Listeners[0].Endpoint: {running.Host}:{running.Port} is in use by pid {running.Id} (dotnet); stop that server or choose another endpoint", serve.Err.Trim());
        Assert.False(running.HasExited);
    }

    [Fact]
    public void TheListeningSocketIsNotSharedWithinAProcessEither()
    {
        var listener = new ListenerOptions { Name = "mx", Endpoint = $"127.0.0.1:{Ports.Free(IPAddress.Loopback)}" };
        using var one = ListenerSocket.Bind(listener, 0);
        one.Listen();
        var e = Assert.Throws<EndpointInUseException>(() => ListenerSocket.Bind(listener, 3));
        Assert.StartsWith($"Listeners[3].Endpoint: {listener.Endpoint} is in use by pid {Environment.ProcessId}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ARestartedServerBindsWhileOldConnectionsLinger()
    {
        // SO_REUSEADDR stays: a connection of the old server in TIME_WAIT does not keep the new one from its port.
        var listener = new ListenerOptions { Name = "mx", Endpoint = $"127.0.0.1:{Ports.Free(IPAddress.Loopback)}" };
        var endpoint = IPEndPoint.Parse(listener.Endpoint);
        using (var old = ListenerSocket.Bind(listener, 0))
        {
            old.Listen();
            using var client = new System.Net.Sockets.TcpClient();
            client.Connect(endpoint);
            using var accepted = old.Accept();
            accepted.Close(); // the server side closes first: its end goes to TIME_WAIT
        }
        using var again = ListenerSocket.Bind(listener, 0);
        Assert.Equal(endpoint.Port, ((IPEndPoint)again.LocalEndPoint!).Port);
    }
}
