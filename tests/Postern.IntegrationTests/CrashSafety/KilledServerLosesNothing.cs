using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Accounts;
using Xunit.Abstractions;

namespace Postern.IntegrationTests.CrashSafety;

/// <summary>
/// SPEC §6: "a crash at any instant (kill -9, power loss) loses no acknowledged message". The real
/// executable takes mail from concurrent clients and is killed with SIGKILL at a random moment,
/// several times over the same data directory (so later kills also land during recovery of the
/// earlier ones); after a last restart every message that got its 250 must be in each recipient's
/// Maildir, byte for byte. Duplicates are allowed (delivery is at least once), loss is not.
/// </summary>
public sealed class KilledServerLosesNothing(ITestOutputHelper output)
{
    private const int Clients = 8;
    private const int Kills = 5;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(40);
    private static readonly string[] Accounts = ["alice@example.test", "bob@example.test"];

    [Fact]
    public async Task EveryAcknowledgedMessageIsDeliveredAfterKillNineAndRestart()
    {
        var seed = Environment.TickCount & int.MaxValue;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var root = Path.Combine(Path.GetTempPath(), "postern-crash-tests", Guid.NewGuid().ToString("N")[..12]);
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        var hash = PasswordHasher.Hash("crash-safety-password");
        await File.WriteAllTextAsync(Path.Combine(data, "passwd"), string.Concat(Accounts.Select(a => $"{a}:{hash}\n")));

        var acknowledged = new List<SentMessage>();
        var notable = new List<string>();
        var problems = new List<string>();
        var clock = Stopwatch.StartNew();
        PosternProcess? server = null;
        Traffic? traffic = null;
        try
        {
            for (var round = 1; round <= Kills; round++)
            {
                server = await PosternProcess.StartAsync(data, StartTimeout);
                traffic = Traffic.Start(server.Host, server.Port, round, random.Next());
                // The random delay counts from the round's first 250, so that every round kills a
                // server that is taking mail (and, from round 2, still delivering what it recovered).
                await traffic.FirstAcknowledgedAsync(TimeSpan.FromSeconds(15));
                var killAfter = random.Next(200, 1500);
                await Task.Delay(killAfter);
                traffic.Killing = true;
                server.KillHard();
                var lastOutput = server.Output;
                notable.AddRange(server.Notable);
                server.Dispose();
                server = null;
                await traffic.WhenStoppedAsync(TimeSpan.FromSeconds(30));

                var queued = CountFiles(Path.Combine(data, "queue", "messages"));
                output.WriteLine($"round {round}: SIGKILL {killAfter} ms after the first 250; acknowledged {traffic.Acknowledged.Count}, " +
                    $"unanswered at the kill {traffic.Unanswered}, left in queue/messages {queued}");
                if (!traffic.Unexpected.IsEmpty)
                {
                    // Kept for the end, so that the loss check still runs: a refusal of a valid
                    // recipient is a bug, but a lost acknowledged message is the worse one.
                    problems.Add($"round {round}: replies or errors while the server was alive:\n  {string.Join("\n  ", traffic.Unexpected.Take(10))}");
                }
                acknowledged.AddRange(traffic.Acknowledged);
            }
            Assert.True(acknowledged.Count > 0, "no message was acknowledged in any round: the test proved nothing");

            server = await PosternProcess.StartAsync(data, StartTimeout);
            var drained = await WaitForDrainAsync(data);
            output.WriteLine($"restarted: queue/messages {(drained ? "drained" : "NOT drained")} after {clock.Elapsed.TotalSeconds:F1} s in total");
            await Task.Delay(200);
            notable.AddRange(server.Notable);
            problems.InsertRange(0, Verify(data, acknowledged, drained));
            Assert.True(problems.Count == 0, string.Join("\n", problems) +
                $"\nrefusals, bounces and errors the servers logged:\n  {string.Join("\n  ", notable.Take(30))}\nlast server output:\n{server.Output}");
        }
        finally
        {
            if (traffic is not null)
            {
                traffic.Killing = true;
            }
            server?.Dispose();
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Every acknowledged message, for each of its recipients, delivered intact; no torn file anywhere it could be read.</summary>
    private List<string> Verify(string data, List<SentMessage> acknowledged, bool drained)
    {
        var delivered = new Dictionary<(string Account, string Token), List<byte[]>>();
        var torn = new List<string>();
        foreach (var account in Accounts)
        {
            var newDir = NewDir(data, account);
            foreach (var file in Directory.Exists(newDir) ? Directory.EnumerateFiles(newDir) : [])
            {
                var bytes = File.ReadAllBytes(file);
                var token = TokenOf(bytes);
                if (token is null)
                {
                    torn.Add(file);
                    continue;
                }
                var key = (account, token);
                if (!delivered.TryGetValue(key, out var copies))
                {
                    delivered[key] = copies = [];
                }
                copies.Add(TestServer.BodyAfterTrace(bytes));
            }
        }

        var lost = new List<string>();
        var damaged = new List<string>();
        var duplicates = 0;
        foreach (var m in acknowledged)
        {
            foreach (var account in m.Recipients)
            {
                if (!delivered.TryGetValue((account, m.Token), out var copies))
                {
                    lost.Add($"{m.Token} to {account} ({m.Reply})");
                    continue;
                }
                if (!copies.Any(c => c.AsSpan().SequenceEqual(m.Content)))
                {
                    damaged.Add($"{m.Token} to {account} ({m.Reply}): {copies.Count} copies, none equal to the {m.Content.Length} octets sent");
                }
                duplicates += copies.Count - 1;
            }
        }
        var copiesOfAcknowledged = acknowledged.Sum(m => m.Recipients.Length);
        var unacknowledgedDelivered = delivered.Count - acknowledged.SelectMany(m => m.Recipients.Select(a => (a, m.Token))).Count(delivered.ContainsKey);
        output.WriteLine($"acknowledged {acknowledged.Count} messages ({copiesOfAcknowledged} mailbox copies due): lost {lost.Count}, damaged {damaged.Count}, " +
            $"duplicate copies {duplicates}, delivered though never acknowledged {unacknowledgedDelivered}");

        var queue = Path.Combine(data, "queue");
        var corrupt = Directory.GetFiles(Path.Combine(queue, "corrupt"));
        var problems = new List<string>();
        if (lost.Count > 0)
        {
            problems.Add($"{lost.Count} acknowledged messages lost, e.g.:\n  {string.Join("\n  ", lost.Take(10))}");
        }
        if (damaged.Count > 0)
        {
            problems.Add($"{damaged.Count} acknowledged messages damaged, e.g.:\n  {string.Join("\n  ", damaged.Take(10))}");
        }
        if (torn.Count > 0)
        {
            problems.Add($"torn files in Maildir new/: {string.Join(", ", torn.Take(10))}");
        }
        // A file reaches queue/messages only by a rename of a complete, fsync'd file: a kill cannot tear one.
        if (corrupt.Length > 0)
        {
            problems.Add($"queue/corrupt holds {string.Join(", ", corrupt.Select(Path.GetFileName))}");
        }
        if (!drained)
        {
            problems.Add($"queue/messages was not drained after the restart: {string.Join(", ", Directory.GetFiles(Path.Combine(queue, "messages")).Select(Path.GetFileName).Take(20))}");
        }
        return problems;
    }

    private static async Task<bool> WaitForDrainAsync(string data)
    {
        var messages = Path.Combine(data, "queue", "messages");
        var deadline = Stopwatch.StartNew();
        while (CountFiles(messages) > 0)
        {
            if (deadline.Elapsed > DrainTimeout)
            {
                return false;
            }
            await Task.Delay(50);
        }
        return true;
    }

    private static int CountFiles(string dir) => Directory.Exists(dir) ? Directory.GetFiles(dir).Length : 0;

    private static string NewDir(string data, string account)
    {
        var at = account.IndexOf('@', StringComparison.Ordinal);
        var dir = Path.Combine(data, "mail", account[(at + 1)..], account[..at], "new");
        return dir;
    }

    /// <summary>The X-Token header's value, or null if the file does not hold a whole message of ours.</summary>
    private static string? TokenOf(byte[] delivered)
    {
        var text = Encoding.Latin1.GetString(delivered);
        var header = text.IndexOf("\r\nX-Token: ", StringComparison.Ordinal);
        var end = text.IndexOf("\r\n.end ", StringComparison.Ordinal);
        if (header < 0 || end < 0 || !text.EndsWith("\r\n", StringComparison.Ordinal))
        {
            return null;
        }
        var start = header + "\r\nX-Token: ".Length;
        return text[start..text.IndexOf("\r\n", start, StringComparison.Ordinal)];
    }

    /// <summary>A message whose 250 was received.</summary>
    private sealed record SentMessage(string Token, string[] Recipients, byte[] Content, string Reply);

    /// <summary>Concurrent clients sending in loops until the server is killed.</summary>
    private sealed class Traffic
    {
        private readonly Task[] _clients;
        private readonly TaskCompletionSource _firstAcknowledged = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _unanswered;
        private volatile bool _killing;

        private Traffic(string host, int port, int round, int seed)
        {
            _clients = Enumerable.Range(0, Clients).Select(i => Task.Run(() => ClientAsync(host, port, round, i, new Random(seed + i)))).ToArray();
        }

        public ConcurrentQueue<SentMessage> Acknowledged { get; } = new();

        /// <summary>Refusals and errors seen while the server was alive: there should be none.</summary>
        public ConcurrentQueue<string> Unexpected { get; } = new();

        /// <summary>Messages whose data was sent but whose reply never came: the client must assume them lost.</summary>
        public int Unanswered => Volatile.Read(ref _unanswered);

        /// <summary>Set just before the kill: from then on, errors are the kill's doing.</summary>
        public bool Killing
        {
            get => _killing;
            set => _killing = value;
        }

        public static Traffic Start(string host, int port, int round, int seed) => new(host, port, round, seed);

        /// <summary>Returns at the first 250 of the round, or after the timeout (the errors will tell why).</summary>
        public Task FirstAcknowledgedAsync(TimeSpan timeout) => Task.WhenAny(_firstAcknowledged.Task, Task.Delay(timeout));

        public async Task WhenStoppedAsync(TimeSpan timeout)
        {
            var all = Task.WhenAll(_clients);
            if (await Task.WhenAny(all, Task.Delay(timeout)) != all)
            {
                throw new TimeoutException("clients did not stop after the server was killed");
            }
            await all;
        }

        private async Task ClientAsync(string host, int port, int round, int client, Random random)
        {
            var n = 0;
            while (!Killing)
            {
                var dataSent = false;
                try
                {
                    await using var c = await RawSmtp.OpenAsync(port, host: host);
                    var perConnection = random.Next(1, 12);
                    for (var i = 0; i < perConnection && !Killing; i++)
                    {
                        var token = $"r{round}c{client}m{n++}x{random.Next():x8}";
                        var recipients = random.Next(3) switch
                        {
                            0 => new[] { Accounts[0] },
                            1 => new[] { Accounts[1] },
                            _ => Accounts,
                        };
                        var content = Content(token, recipients, random.Next(10) == 0 ? random.Next(20_000, 150_000) : random.Next(200, 4_000));
                        var bdat = random.Next(2) == 0;
                        dataSent = false;
                        await ExpectAsync(c, "MAIL FROM:<carol@remote.example>");
                        foreach (var r in recipients)
                        {
                            await ExpectAsync(c, $"RCPT TO:<{r}>");
                        }
                        string reply;
                        if (bdat)
                        {
                            dataSent = true;
                            await c.SendAsync([.. Encoding.ASCII.GetBytes($"BDAT {content.Length} LAST\r\n"), .. content]);
                        }
                        else
                        {
                            await ExpectAsync(c, "DATA", "354");
                            dataSent = true;
                            // RFC 5321 §4.5.2: a line that starts with a dot gets one more (the server takes it away).
                            await c.SendAsync([.. DotStuff(content), .. ".\r\n"u8]);
                        }
                        reply = await c.ReadReplyAsync();
                        if (reply.StartsWith("250 ", StringComparison.Ordinal))
                        {
                            Acknowledged.Enqueue(new SentMessage(token, recipients, content, reply));
                            _firstAcknowledged.TrySetResult();
                            dataSent = false;
                            continue;
                        }
                        throw new InvalidOperationException($"end of data answered: '{reply}'");
                    }
                    if (!Killing)
                    {
                        await ExpectAsync(c, "QUIT", "221");
                    }
                }
#pragma warning disable CA1031 // Whatever the kill breaks, the client just stops; before the kill nothing may fail.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    if (dataSent)
                    {
                        Interlocked.Increment(ref _unanswered);
                    }
                    if (!Killing)
                    {
                        Unexpected.Enqueue($"client {client}: {e.GetType().Name}: {e.Message}");
                        return;
                    }
                }
            }
        }

        private static async Task ExpectAsync(RawSmtp c, string command, string code = "250")
        {
            var reply = await c.CommandAsync(command);
            if (!reply.StartsWith(code, StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"{command} answered: '{reply}'");
            }
        }

        private static byte[] DotStuff(byte[] content) =>
            Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(content).Replace("\r\n.", "\r\n..", StringComparison.Ordinal));

        /// <summary>Headers naming the token, lines of it, and a last line that shows the message is whole.</summary>
        private static byte[] Content(string token, string[] recipients, int size)
        {
            var sb = new StringBuilder();
            sb.Append("From: Carol <carol@remote.example>\r\n");
            sb.Append("To: ").Append(string.Join(", ", recipients)).Append("\r\n");
            sb.Append("Subject: kill -9 ").Append(token).Append("\r\n");
            sb.Append("Message-ID: <").Append(token).Append("@remote.example>\r\n");
            sb.Append("X-Token: ").Append(token).Append("\r\n\r\n");
            for (var line = 0; sb.Length < size; line++)
            {
                sb.Append(token).Append(' ').Append(line.ToString("D6", System.Globalization.CultureInfo.InvariantCulture)).Append(' ')
                    .Append((char)('a' + (line % 26)), 50).Append("\r\n");
            }
            sb.Append(".end ").Append(token).Append("\r\n");
            return Encoding.ASCII.GetBytes(sb.ToString());
        }
    }
}
