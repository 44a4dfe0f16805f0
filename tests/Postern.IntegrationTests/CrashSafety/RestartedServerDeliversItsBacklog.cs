using System.Buffers;
using System.Diagnostics;
using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Accounts;
using Postern.Server.Queue;
using Xunit.Abstractions;

namespace Postern.IntegrationTests.CrashSafety;

/// <summary>
/// After a crash, the messages a server had acknowledged but not yet delivered wait in
/// queue/messages; the restarted server must deliver every one of them (SPEC §6). A fresh process
/// meets its whole backlog at once, with cold caches: this is where a recovery race shows.
/// </summary>
public sealed class RestartedServerDeliversItsBacklog(ITestOutputHelper output)
{
    private const int Restarts = 8;
    private const int Backlog = 40;
    private static readonly string[] Accounts = ["alice@example.test", "bob@example.test"];

    [Fact]
    public async Task EveryQueuedMessageIsDeliveredAfterARestart()
    {
        var hash = PasswordHasher.Hash("crash-safety-password");
        var failures = new List<string>();
        for (var restart = 1; restart <= Restarts; restart++)
        {
            var root = Path.Combine(Path.GetTempPath(), "postern-crash-tests", Guid.NewGuid().ToString("N")[..12]);
            var data = Path.Combine(root, "data");
            Directory.CreateDirectory(data);
            PosternProcess? server = null;
            try
            {
                await File.WriteAllTextAsync(Path.Combine(data, "passwd"), string.Concat(Accounts.Select(a => $"{a}:{hash}\n")));
                var queued = await FillQueueAsync(Path.Combine(data, "queue"), Backlog);

                server = await PosternProcess.StartAsync(data, TimeSpan.FromSeconds(30));
                var messages = Path.Combine(data, "queue", "messages");
                var clock = Stopwatch.StartNew();
                while (Directory.GetFiles(messages).Length > 0 && clock.Elapsed < TimeSpan.FromSeconds(20))
                {
                    await Task.Delay(50);
                }
                await Task.Delay(100);
                var missing = queued.Where(q => !Directory.Exists(NewDir(data, q.Account))
                    || !Directory.EnumerateFiles(NewDir(data, q.Account)).Any(f => TestServer.BodyAfterTrace(File.ReadAllBytes(f)).AsSpan().SequenceEqual(q.Content))).ToList();
                output.WriteLine($"restart {restart}: {queued.Count} queued, {queued.Count - missing.Count} delivered, {missing.Count} missing, {Directory.GetFiles(messages).Length} still queued");
                if (missing.Count > 0)
                {
                    var log = server.Output.Split('\n');
                    failures.Add($"restart {restart}: {missing.Count} of {queued.Count} queued messages never reached the Maildir: " +
                        string.Join(", ", missing.Take(5).Select(m => $"{m.Id} to {m.Account}")) + "\n  " +
                        string.Join("\n  ", missing.Take(5).SelectMany(m => log.Where(l => l.Contains(m.Id, StringComparison.Ordinal)))));
                }
            }
            finally
            {
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
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>
    /// The root of what the test above catches, made deterministic: the passwd file is loaded on
    /// first use, and a lookup made while that first load is under way must see the accounts (or
    /// wait for them), never the empty set. Seeing the empty set, local delivery bounces mail for a
    /// real account with 550 5.1.1 and removes it from the queue, and RCPT refuses a real account.
    /// </summary>
    [Fact]
    public async Task AccountLookupDuringTheFirstLoadOfThePasswdFileSeesTheAccounts()
    {
        var path = Path.Combine(Path.GetTempPath(), $"postern-passwd-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(path, "alice@example.test:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA\n");
        using var loading = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        try
        {
            // A slow disk (or a cold JIT) makes the first load take a moment.
            var file = new ReloadingFile<Dictionary<string, string>>(path, p =>
            {
                loading.Set();
                release.Wait(TimeSpan.FromSeconds(10));
                return PasswdFile.Load(p);
            }, new Dictionary<string, string>());
            var store = new AccountStore(file);

            // Dedicated threads: on a busy thread pool the second lookup could otherwise start only
            // after the load, and prove nothing.
            var first = Task.Factory.StartNew(() => store.Exists("alice@example.test"), TaskCreationOptions.LongRunning);
            Assert.True(loading.Wait(TimeSpan.FromSeconds(10)), "the passwd file was never loaded");
            // Another session (or delivery worker) asks while the first load runs.
            using var asking = new ManualResetEventSlim();
            var second = Task.Factory.StartNew(() =>
            {
                asking.Set();
                return store.Exists("alice@example.test");
            }, TaskCreationOptions.LongRunning);
            Assert.True(asking.Wait(TimeSpan.FromSeconds(10)));
            // Either it waits for the load (right) or it answers at once (wrong): give it the time to answer.
            await Task.WhenAny(second, Task.Delay(500));
            var answeredDuringLoad = second.IsCompleted;
            release.Set();

            Assert.True(await first);
            Assert.True(await second, $"a lookup made during the first load of the passwd file (answered {(answeredDuringLoad ? "before" : "after")} the load ended) saw no accounts: " +
                "alice@example.test was reported unknown (RCPT 550 5.1.1; queued mail for her bounced and removed)");
        }
        finally
        {
            release.Set();
            File.Delete(path);
        }
    }

    private sealed record Queued(string Id, string Account, byte[] Content);

    /// <summary>Commits messages into the spool exactly as a session would have before a crash.</summary>
    private static async Task<List<Queued>> FillQueueAsync(string queueDir, int count)
    {
        var result = new List<Queued>();
        await using var spool = new Spool(queueDir);
        for (var i = 0; i < count; i++)
        {
            var id = QueueId.New(DateTimeOffset.UtcNow);
            var account = Accounts[i % Accounts.Length];
            var content = FaultyStorageAcknowledgesNothing.Message(FaultyStorageAcknowledgesNothing.NewToken(), 1_000);
            var envelope = new Envelope
            {
                Id = id.Value,
                Received = DateTimeOffset.UtcNow,
                From = "carol@remote.example",
                ClientIp = "127.0.0.1",
                Helo = "client.example",
                Listener = "mx",
                Protocol = "ESMTP",
                Recipients = [new EnvelopeRecipient { Address = account, Local = true }],
            };
            var writer = spool.Create(envelope);
            writer.WriteText($"Received: from client.example ([127.0.0.1])\r\n\tby mx.example.test (Postern) with ESMTP id {id.Value};\r\n\tThu, 1 Jan 2026 00:00:00 +0000\r\n");
            writer.Write(content);
            await writer.CommitAsync();
            result.Add(new Queued(id.Value, account, content));
        }
        return result;
    }

    private static string NewDir(string data, string account)
    {
        var at = account.IndexOf('@', StringComparison.Ordinal);
        return Path.Combine(data, "mail", account[(at + 1)..], account[..at], "new");
    }
}
