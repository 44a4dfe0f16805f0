using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;
using Postern.Server.Storage;
using Postern.Server;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A real Postern server in the test process, on loopback ports chosen by the system, with its own
/// data directory. Accounts: alice@example.test and bob@example.test (passwords below).
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    public const string AlicePassword = "alice-password-1";
    public const string BobPassword = "bob-password-22";
    private static readonly Lazy<string> AliceHash = new(() => PasswordHasher.Hash(AlicePassword));
    private static readonly Lazy<string> BobHash = new(() => PasswordHasher.Hash(BobPassword));

    private readonly LogSink _logs = new();
    private KeyValueLoggerProvider? _provider;

    private TestServer(string dataDir, PosternOptions options)
    {
        DataDir = dataDir;
        Options = options;
    }

    public string DataDir { get; }
    public PosternOptions Options { get; }
    public PosternServer Server { get; private set; } = null!;
    public int MxPort => Server.Listeners[0].LocalEndPoint.Port;
    public int SubmissionPort => Server.Listeners[1].LocalEndPoint.Port;
    public int SubmissionsPort => Server.Listeners[2].LocalEndPoint.Port;
    public IReadOnlyCollection<string> LogLines => _logs.Lines;
    public string Logs => string.Join("", _logs.Lines);

    /// <summary>A fresh temp folder for one test.</summary>
    public static string NewDataDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "postern-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>The options every test starts from.</summary>
    public static PosternOptions DefaultOptions(string dataDir) => new()
    {
        Hostname = "mx.example.test",
        DataDirectory = dataDir,
        Domains = ["example.test", "localhost"],
        Listeners =
        [
            new ListenerOptions { Name = "mx", Endpoint = "127.0.0.1:0", Role = ListenerRole.Mx },
            new ListenerOptions { Name = "submission", Endpoint = "127.0.0.1:0", Role = ListenerRole.Submission },
            new ListenerOptions { Name = "submissions", Endpoint = "127.0.0.1:0", Role = ListenerRole.Submissions },
        ],
        Tls = new TlsOptions { Generate = true },
        Accounts = new AccountsOptions { FailureDelay = TimeSpan.FromMilliseconds(20) },
        // The tarpit is tested on its own (RateLimits.cs, with an injected clock); elsewhere it would
        // only slow tests down, and stall those that inject a clock for something else.
        Limits = new LimitsOptions { TarpitAfterErrors = 0 },
        // Connection triage likewise (ConnectionTriage.cs): many tests write a whole dialogue at once.
        Triage = new TriageOptions { Enabled = false },
        // And mail authentication (MailAuthentication.cs): it would ask the dead resolver about every sender.
        MailAuth = new MailAuthOptions { Enabled = false },
        // Tests never ask a real resolver: nothing answers here, so remote mail simply defers.
        Dns = new DnsOptions { Servers = ["127.0.0.1:9"], Timeout = TimeSpan.FromMilliseconds(500) },
        Aliases = new(StringComparer.OrdinalIgnoreCase)
        {
            ["sales@example.test"] = ["alice@example.test", "bob@example.test"],
            ["alice.alias@example.test"] = ["alice@example.test"],
            ["fwd@example.test"] = ["someone@remote.example"],
        },
    };

    /// <summary>Starts a server on a data directory used before (a restart), with the test options.</summary>
    public static Task<TestServer> StartOnAsync(string dataDir, Action<PosternOptions>? configure = null, TimeProvider? time = null) =>
        StartAsync(configure, time: time, dataDir: dataDir);

    public static async Task<TestServer> StartAsync(Action<PosternOptions>? configure = null, IDurability? durability = null, TimeProvider? time = null, string? dataDir = null,
        Postern.MailAuth.Dns.IMailAuthDns? mailAuthDns = null)
    {
        var dir = dataDir ?? NewDataDir();
        var options = DefaultOptions(dir);
        configure?.Invoke(options);
        var errors = ConfigurationLoader.Validate(options);
        if (errors.Count > 0)
        {
            throw new InvalidOperationException(string.Join("; ", errors));
        }
        var passwd = options.ResolvePath(options.Accounts.PasswdFile);
        File.WriteAllText(passwd, $"alice@example.test:{AliceHash.Value}\nbob@example.test:{BobHash.Value}\n");
        var t = new TestServer(dir, options);
        t._provider = new KeyValueLoggerProvider(t._logs, LogLevel.Debug, time, options.Logging.Format);
        t.Server = new PosternServer(options, t._provider.CreateLogger("test"), time, durability, mailAuthDns: mailAuthDns);
        t.Server.Start();
        await Task.CompletedTask;
        return t;
    }

    /// <summary>Message files delivered to an account's Maildir new/.</summary>
    public string[] Delivered(string account, string? folder = null)
    {
        var at = account.IndexOf('@');
        var box = Path.Combine(DataDir, "mail", account[(at + 1)..], account[..at]);
        if (folder is not null)
        {
            box = Path.Combine(box, "." + folder);
        }
        var dir = Path.Combine(box, "new");
        return Directory.Exists(dir) ? Directory.GetFiles(dir).Order(StringComparer.Ordinal).ToArray() : [];
    }

    /// <summary>Waits until an account has at least <paramref name="count"/> messages; returns their contents.</summary>
    public async Task<byte[][]> WaitForDeliveryAsync(string account, int count = 1, int timeoutMs = 10_000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            var files = Delivered(account);
            if (files.Length >= count)
            {
                return files.Select(File.ReadAllBytes).ToArray();
            }
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"{account} has {files.Length} of {count} messages after {timeoutMs} ms. Log:\n{Logs}");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>Waits until a log line contains all the given fragments.</summary>
    public async Task<string> WaitForLogAsync(params string[] fragments)
    {
        var deadline = Environment.TickCount64 + 10_000;
        while (true)
        {
            var line = _logs.Lines.FirstOrDefault(l => fragments.All(f => l.Contains(f, StringComparison.Ordinal)));
            if (line is not null)
            {
                return line;
            }
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"no log line with {string.Join(" & ", fragments)}. Log:\n{Logs}");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>The message as received, after the two lines local delivery adds (Return-Path, Delivered-To) and the Received header.</summary>
    public static byte[] BodyAfterTrace(byte[] delivered)
    {
        var text = Encoding.Latin1.GetString(delivered);
        var received = text.IndexOf("\r\nReceived: ", StringComparison.Ordinal);
        // The Received header ends at the first line that does not start with a tab.
        var pos = received + 2;
        while (true)
        {
            var eol = text.IndexOf("\r\n", pos, StringComparison.Ordinal);
            pos = eol + 2;
            if (pos >= text.Length || text[pos] != '\t')
            {
                break;
            }
        }
        return delivered[pos..];
    }

    /// <summary>Keep the data directory when disposed (for a restart on it with <see cref="StartOnAsync"/>).</summary>
    public bool KeepData { get; set; }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _provider?.Dispose();
        if (KeepData)
        {
            return;
        }
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class LogSink : TextWriter
    {
        private readonly ConcurrentQueue<string> _lines = new();
        public IReadOnlyCollection<string> Lines => _lines;
        public override Encoding Encoding => Encoding.UTF8;
        public override void Write(string? value)
        {
            if (value is not null)
            {
                _lines.Enqueue(value);
            }
        }
        public override void Write(char value) => Write(value.ToString());
    }
}
