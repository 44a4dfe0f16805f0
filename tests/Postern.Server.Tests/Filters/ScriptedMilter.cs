using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Postern.Server.Configuration;
using Postern.Server.Filters.Milter;

namespace Postern.Server.Tests.Filters;

/// <summary>
/// The milter side of the protocol, driven by the test step by step over a real unix socket: it
/// reads the frames the client sends and writes whatever the test gives it, including what no real
/// milter would (a frame too large, a change not negotiated, silence), which is what these tests
/// are about. Real milters are in Postern.IntegrationTests/Filters.
/// </summary>
internal sealed class ScriptedMilter : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly string _dir;
    private Socket? _peer;

    public ScriptedMilter()
    {
        _dir = Directory.CreateTempSubdirectory("postern-milter-").FullName;
        Path_ = System.IO.Path.Combine(_dir, "milter.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(Path_));
        _listener.Listen(4);
    }

    public string Path_ { get; }

    public FakeTimeProvider Time { get; } = new();

    public ListLogger Log { get; } = new();

    public Milter Milter(Action<MilterOptions>? configure = null)
    {
        var options = new MilterOptions { Name = "scripted", Address = "unix:" + Path_ };
        configure?.Invoke(options);
        return new Milter(options, Time, Log);
    }

    /// <summary>Accepts the client's connection (the next one, after a previous was closed).</summary>
    public async Task AcceptAsync()
    {
        _peer?.Dispose();
        using var cts = new CancellationTokenSource(10_000);
        _peer = await _listener.AcceptAsync(cts.Token);
    }

    /// <summary>The next frame the client sent: its command and data.</summary>
    public async Task<(char Command, byte[] Data)> ReadAsync()
    {
        using var cts = new CancellationTokenSource(10_000);
        var head = new byte[5];
        await ReadExactly(head, cts.Token);
        var length = BinaryPrimitives.ReadUInt32BigEndian(head);
        var data = new byte[length - 1];
        await ReadExactly(data, cts.Token);
        return ((char)head[4], data);
    }

    /// <summary>Reads frames until one with <paramref name="command"/>, returning those skipped (macros) too.</summary>
    public async Task<List<(char Command, byte[] Data)>> ReadUntilAsync(char command)
    {
        var frames = new List<(char, byte[])>();
        while (true)
        {
            var f = await ReadAsync();
            frames.Add(f);
            if (f.Command == command)
            {
                return frames;
            }
        }
    }

    /// <summary>Reads the option negotiation and answers with these choices (and macro lists).</summary>
    public async Task NegotiateAsync(MilterActions actions, MilterSteps steps, uint version = 6, params (MilterStage Stage, string Names)[] macros)
    {
        await AcceptAsync();
        var (command, data) = await ReadAsync();
        Assert.Equal('O', command);
        Assert.Equal(6u, BinaryPrimitives.ReadUInt32BigEndian(data));
        var reply = new List<byte>();
        reply.AddRange(BigEndian(version));
        reply.AddRange(BigEndian((uint)actions));
        reply.AddRange(BigEndian((uint)steps));
        foreach (var (stage, names) in macros)
        {
            reply.AddRange(BigEndian((uint)stage));
            reply.AddRange(Encoding.ASCII.GetBytes(names + "\0"));
        }
        await SendAsync('O', reply.ToArray());
    }

    public async Task SendAsync(char code, params byte[] data)
    {
        var frame = new byte[5 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(data.Length + 1));
        frame[4] = (byte)code;
        data.CopyTo(frame, 5);
        await _peer!.SendAsync(frame);
    }

    /// <summary>A reply whose data is NUL-terminated strings.</summary>
    public Task SendStringsAsync(char code, params string[] strings) =>
        SendAsync(code, Encoding.UTF8.GetBytes(string.Concat(strings.Select(s => s + "\0"))));

    /// <summary>A reply with a 32-bit index and then strings (SMFIR_INSHEADER, SMFIR_CHGHEADER).</summary>
    public Task SendIndexedAsync(char code, uint index, params string[] strings) =>
        SendAsync(code, [.. BigEndian(index), .. Encoding.UTF8.GetBytes(string.Concat(strings.Select(s => s + "\0")))]);

    /// <summary>A length header announcing <paramref name="length"/> bytes, and nothing after it.</summary>
    public async Task SendLengthOnlyAsync(uint length)
    {
        var head = new byte[5];
        BinaryPrimitives.WriteUInt32BigEndian(head, length);
        head[4] = (byte)'b';
        await _peer!.SendAsync(head);
    }

    /// <summary>Whether the client closed the connection (a read returns end of stream).</summary>
    public async Task<bool> ClosedByClientAsync()
    {
        using var cts = new CancellationTokenSource(10_000);
        var buffer = new byte[64];
        try
        {
            while (true)
            {
                var n = await _peer!.ReceiveAsync(buffer, cts.Token);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
    }

    public static byte[] BigEndian(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }

    /// <summary>The strings of a frame's data (NUL-terminated).</summary>
    public static string[] Strings(byte[] data) =>
        Encoding.UTF8.GetString(data).Split('\0')[..^1];

    private async Task ReadExactly(byte[] buffer, CancellationToken token)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await _peer!.ReceiveAsync(buffer.AsMemory(read), token);
            if (n == 0)
            {
                throw new EndOfStreamException("the client closed the connection");
            }
            read += n;
        }
    }

    public ValueTask DisposeAsync()
    {
        _peer?.Dispose();
        _listener.Dispose();
        Directory.Delete(_dir, recursive: true);
        return ValueTask.CompletedTask;
    }

    /// <summary>Collects the lines as the key=value log would show them.</summary>
    internal sealed class ListLogger : ILogger
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IReadOnlyCollection<string> Lines => _lines;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _lines.Enqueue($"event={eventId.Name} {formatter(state, exception)}");
    }
}
