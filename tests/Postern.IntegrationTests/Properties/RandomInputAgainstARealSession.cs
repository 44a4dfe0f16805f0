using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using CsCheck;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Properties;

/// <summary>
/// Property tests (CsCheck) against a real server over loopback: random byte streams never crash a
/// session or the server (every reply is well-formed, the session ends when the client does, nothing
/// is logged as an internal error, and a fresh client is still greeted and answered), and a command
/// line that is not a valid SMTP command is never answered 250.
/// </summary>
public sealed partial class RandomInputAgainstARealSession
{
    private static readonly string[] Verbs =
        ["HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH"];

    /// <summary>Pieces of dialogue, right and wrong, that random streams are made of.</summary>
    private static readonly string[] Pieces =
    [
        "EHLO fuzz.example\r\n", "HELO fuzz.example\r\n", "MAIL FROM:<fuzz@remote.example>\r\n", "MAIL FROM:<>\r\n",
        "RCPT TO:<alice@example.test>\r\n", "RCPT TO:<postmaster>\r\n", "RCPT TO:<someone@remote.example>\r\n", "DATA\r\n",
        "BDAT 5\r\n", "BDAT 3 LAST\r\n", "BDAT 0 LAST\r\n", "RSET\r\n", "NOOP\r\n", "VRFY alice\r\n", "AUTH PLAIN AGEAYg==\r\n",
        "Subject: fuzz\r\n\r\n", "body line\r\n", "..stuffed\r\n", ".\r\n", "\r\n.\r\n", "\n.\n", "\r.\r\n", "\n.\r\n", "\r\n",
        "\r", "\n", "\0", ".", " ", "<", ">", "@", ":", "SIZE=10", "SMTPUTF8", "\u00e9", "GET / HTTP/1.1\r\n",
    ];

    private static readonly Gen<byte[]> Streams =
        Gen.Frequency(
                (5, Gen.OneOf(Pieces).Select(p => Encoding.UTF8.GetBytes(p))),
                (1, Gen.Byte.Array[1, 16]))
            .Array[1, 40]
            .Select(parts => Encoding.ASCII.GetBytes("EHLO fuzz.example\r\n").Concat(parts.SelectMany(p => p)).ToArray());

    private static readonly Gen<char> Printable = Gen.Char['!', '~'];

    private static readonly Gen<string> Argument = Gen.Frequency(
        (4, Text(Gen.Frequency((6, Printable), (1, Gen.Const(' '))), 0, 30)),
        (1, Gen.Const("MAIL FROM:<a@b.example>\0")));

    /// <summary>Lines that are not SMTP commands; none may be answered 250, nor anything but 5xx.</summary>
    private static readonly Gen<string> InvalidLines = Gen.OneOf(
        // A verb that is not one (HELP, NOOP, VRFY and EXPN take any argument, so never those with a valid verb).
        Gen.Select(Text(Printable, 0, 12), Argument, (verb, arg) => $"{verb} {arg}")
            .Where(line => !Verbs.Contains(line.Split(' ')[0], StringComparer.OrdinalIgnoreCase)),
        Argument.Where(a => !a.StartsWith("FROM:", StringComparison.OrdinalIgnoreCase)).Select(a => $"MAIL {a}"),
        Argument.Where(a => !a.StartsWith("TO:", StringComparison.OrdinalIgnoreCase)).Select(a => $"RCPT {a}"),
        Gen.Select(Gen.OneOf("HELO", "EHLO"), Gen.OneOf("", " ", "a b", "x.example y"), (v, a) => $"{v} {a}"),
        Gen.Select(Gen.OneOf("DATA", "RSET", "QUIT", "STARTTLS"), Text(Printable, 1, 10), (v, a) => $"{v} {a}"),
        Text(Printable, 1, 10).Select(a => $"BDAT x{a}"),
        Gen.Select(Printable.Array[1, 5], Printable.Array[1, 5], (a, b) => $"AUTH PLAIN {new string(a)} {new string(b)}"),
        Gen.Int[513, 900].Select(n => "NOOP " + new string('x', n)),
        Gen.Const("RCPT TO:<\u00ff@example.test>"));

    private static Gen<string> Text(Gen<char> chars, int min, int max) => chars.Array[min, max].Select(a => new string(a));

    private static async Task<TestServer> StartAsync() => await TestServer.StartAsync(o =>
    {
        // Each sample is a new connection and most are full of errors: no limit may cut the run short.
        o.Limits.MaxErrors = 10_000;
        o.Limits.MaxConnectionsPerIpPerMinute = 0;
        o.Limits.MaxMessagesPerHourPerIp = 0;
        o.Limits.MaxRecipientsPerHourPerIp = 0;
    });

    [Fact]
    public async Task RandomStreamsNeverCrashTheSessionOrTheServer()
    {
        await using var server = await StartAsync();
        await Streams.SampleAsync(async bytes =>
        {
            var replies = await SendAndCloseAsync(server.MxPort, bytes);
            foreach (var line in replies.Split("\r\n", StringSplitOptions.RemoveEmptyEntries))
            {
                Assert.Matches(ReplyLine(), line);
            }
        }, iter: 100, threads: 1);
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=session_error", StringComparison.Ordinal));
        // The server is still there for the next client.
        await using var fresh = await RawSmtp.OpenAsync(server.MxPort);
        await fresh.CommandAsync("QUIT", 221);
    }

    [Fact]
    public async Task InvalidCommandLinesAreNeverAnswered250()
    {
        await using var server = await StartAsync();
        await InvalidLines.Array[1, 6].SampleAsync(async lines =>
        {
            await using var c = await RawSmtp.OpenAsync(server.MxPort);
            foreach (var line in lines)
            {
                await c.SendAsync(Encoding.Latin1.GetBytes(line + "\r\n"));
                var reply = await c.ReadReplyAsync();
                Assert.True(reply.Length >= 3 && reply[0] == '5', $"\"{line}\" was answered: {reply}");
            }
        }, iter: 300, threads: 1, print: lines => string.Join(" | ", lines));
        await using var fresh = await RawSmtp.OpenAsync(server.MxPort);
        await fresh.CommandAsync("QUIT", 221);
    }

    /// <summary>Sends the bytes, closes the sending side, and reads every reply until the server closes.</summary>
    private static async Task<string> SendAndCloseAsync(int port, byte[] bytes)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        var stream = tcp.GetStream();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var received = new MemoryStream();
        var reading = stream.CopyToAsync(received, cts.Token);
        try
        {
            await stream.WriteAsync(bytes, cts.Token);
            tcp.Client.Shutdown(SocketShutdown.Send);
        }
        catch (IOException)
        {
            // The server may close first (a bare LF in DATA, QUIT): what it said is still read below.
        }
        try
        {
            await reading;
        }
        catch (IOException)
        {
            // A reset after the server closed with unread input: the replies before it are in received.
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the session did not end within 10 s of the client closing; input: {Convert.ToBase64String(bytes)}");
        }
        return Encoding.Latin1.GetString(received.ToArray());
    }

    // RFC 5321 §4.2: a code from 2xx to 5xx, then a space or a hyphen (or nothing), then text.
    [GeneratedRegex(@"^[2-5][0-9][0-9]([ -].*)?$")]
    private static partial Regex ReplyLine();
}
