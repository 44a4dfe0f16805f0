using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Dialogues;

/// <summary>
/// Tier 2 of STYLE's tests: plain transcript files, one per behaviour, run against the real server
/// over loopback. Lines:
///   @listener mx|submission|submissions   which port (default mx); @option Key=Value sets a limit
///   c: TEXT      send TEXT + CRLF (escapes \r \n \0 \xNN \\ are decoded)
///   c! TEXT      send TEXT exactly, no CRLF added (escapes decoded)
///   s: PREFIX    the next reply's last line starts with PREFIX (e.g. "250 2.1.5")
///   s: closed    the server closes the connection
///   tls          STARTTLS and the handshake
///   auth USER    AUTH PLAIN as alice or bob (expects 235)
///   delivered ACCOUNT N   ACCOUNT has exactly N messages after the dialogue
///   queued N     exactly N messages are in the queue or delivered (counted by accepted log lines)
/// </summary>
public sealed class TranscriptRunner
{
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "Dialogues", "Transcripts");

    public static TheoryData<string> Transcripts()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Folder, "*.smtp").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileNameWithoutExtension(f));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Transcripts))]
    public async Task Transcript(string name)
    {
        var lines = File.ReadAllLines(Path.Combine(Folder, name + ".smtp"));
        var listener = "mx";
        var options = new List<(string, string)>();
        foreach (var l in lines.Where(l => l.StartsWith('@')))
        {
            var parts = l[1..].Split(' ', 2);
            if (parts[0] == "listener")
            {
                listener = parts[1].Trim();
            }
            else if (parts[0] == "option")
            {
                var kv = parts[1].Split('=', 2);
                options.Add((kv[0].Trim(), kv[1].Trim()));
            }
        }
        await using var server = await TestServer.StartAsync(o => Apply(o, options));
        var port = listener switch
        {
            "submission" => server.SubmissionPort,
            "submissions" => server.SubmissionsPort,
            _ => server.MxPort,
        };
        await using var c = await RawSmtp.ConnectAsync(port, implicitTls: listener == "submissions");
        var lineNo = 0;
        foreach (var raw in lines)
        {
            lineNo++;
            var where = $"{name}.smtp:{lineNo}: {raw}";
            if (raw.Length == 0 || raw.StartsWith('#') || raw.StartsWith('@'))
            {
                continue;
            }
            if (raw.StartsWith("c: ", StringComparison.Ordinal))
            {
                await c.SendAsync(Decode(raw[3..] + "\\r\\n"));
            }
            else if (raw.StartsWith("c! ", StringComparison.Ordinal))
            {
                await c.SendAsync(Decode(raw[3..]));
            }
            else if (raw == "s: closed")
            {
                Assert.True(await c.IsClosedAsync(), $"{where}: the server did not close the connection");
            }
            else if (raw.StartsWith("s: ", StringComparison.Ordinal))
            {
                var reply = await c.ReadReplyAsync();
                var last = reply.Split('\n')[^1];
                Assert.True(last.StartsWith(raw[3..], StringComparison.Ordinal), $"{where}\n  got: {reply}\n  log:\n{server.Logs}");
            }
            else if (raw == "tls")
            {
                await c.StartTlsAsync();
            }
            else if (raw.StartsWith("auth ", StringComparison.Ordinal))
            {
                var user = raw[5..].Trim();
                var password = user == "alice" ? TestServer.AlicePassword : TestServer.BobPassword;
                var reply = await c.AuthPlainAsync($"{user}@example.test", password);
                Assert.True(reply.StartsWith("235 2.7.0", StringComparison.Ordinal), $"{where}: {reply}");
            }
            else if (raw.StartsWith("delivered ", StringComparison.Ordinal))
            {
                var parts = raw.Split(' ');
                var expected = int.Parse(parts[2], CultureInfo.InvariantCulture);
                if (expected > 0)
                {
                    await server.WaitForDeliveryAsync(parts[1], expected);
                }
                await Task.Delay(200);
                Assert.True(server.Delivered(parts[1]).Length == expected, $"{where}: {server.Delivered(parts[1]).Length} delivered\n{server.Logs}");
            }
            else if (raw.StartsWith("queued ", StringComparison.Ordinal))
            {
                await Task.Delay(200);
                var n = server.LogLines.Count(l => l.Contains("event=accepted", StringComparison.Ordinal));
                Assert.True(n == int.Parse(raw[7..], CultureInfo.InvariantCulture), $"{where}: {n} accepted\n{server.Logs}");
            }
            else
            {
                throw new InvalidOperationException($"{where}: unknown transcript line");
            }
        }
    }

    private static void Apply(PosternOptions o, List<(string Key, string Value)> settings)
    {
        foreach (var (key, value) in settings)
        {
            switch (key)
            {
                case "Limits.MaxMessageSize": o.Limits.MaxMessageSize = long.Parse(value, CultureInfo.InvariantCulture); break;
                case "Limits.MaxRecipients": o.Limits.MaxRecipients = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "Limits.MaxErrors": o.Limits.MaxErrors = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "Limits.CommandTimeout": o.Limits.CommandTimeout = TimeSpan.Parse(value, CultureInfo.InvariantCulture); break;
                case "Limits.DataTimeout": o.Limits.DataTimeout = TimeSpan.Parse(value, CultureInfo.InvariantCulture); break;
                case "Limits.MaxConnectionsPerIp": o.Limits.MaxConnectionsPerIp = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "Relay.TrustedNetworks": o.Relay.TrustedNetworks = [value]; break;
                default: throw new InvalidOperationException($"unknown @option {key}");
            }
        }
    }

    /// <summary>Decodes \r \n \0 \t \xNN \\ escapes into bytes; other characters are sent as UTF-8.</summary>
    public static byte[] Decode(string s)
    {
        var bytes = new List<byte>();
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                var e = s[++i];
                switch (e)
                {
                    case 'r': bytes.Add((byte)'\r'); continue;
                    case 'n': bytes.Add((byte)'\n'); continue;
                    case '0': bytes.Add(0); continue;
                    case 't': bytes.Add((byte)'\t'); continue;
                    case '\\': bytes.Add((byte)'\\'); continue;
                    case 'x':
                        bytes.Add(byte.Parse(s.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 2;
                        continue;
                    case 'R':
                        // \R{N,c}: N repetitions of character c, for long lines.
                        var m = Regex.Match(s[(i + 1)..], @"^\{(\d+),(.)\}");
                        bytes.AddRange(Enumerable.Repeat((byte)m.Groups[2].Value[0], int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)));
                        i += m.Length;
                        continue;
                }
                bytes.Add((byte)'\\');
                bytes.Add((byte)e);
                continue;
            }
            bytes.AddRange(Encoding.UTF8.GetBytes(s[i].ToString()));
        }
        return bytes.ToArray();
    }
}
