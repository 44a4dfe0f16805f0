using System.Net;
using Microsoft.Extensions.Logging;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Delivery;
using Postern.Server.Limits;
using Postern.Server.Listening;
using Postern.Server.Logging;
using Postern.Server.Queue;
using Postern.Server.Smtp;
using Postern.Server.Storage;

namespace Postern.Server;

/// <summary>
/// The whole server: listeners, sessions, the spool and local delivery, wired together.
/// Start takes the data directory's lock (queue/server.lock: one server per data directory, and
/// `postern queue` knows one runs), binds every listener, recovers the queue and starts taking
/// `postern queue` requests; StopAsync drains (SIGTERM): listeners close, idle sessions get 421
/// 4.3.2, transactions in flight finish, then delivery stops. The lock goes with DisposeAsync.
/// Reload (SIGHUP, `postern reload`) puts a new configuration in force (PosternServer.Reload.cs).
/// </summary>
public sealed partial class PosternServer : IAsyncDisposable
{
    // The options of the start: what the sockets, the data directory and the delivery machinery were
    // made from. What is in force now is Context.Configuration (a reload replaces it).
    private readonly PosternOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _draining = new();
    private readonly CancellationTokenSource _stopDelivery = new();
    private readonly List<SmtpListener> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly SessionTracker _sessions = new();
    private Task? _delivery;
    private Task? _control;
    private Task? _pickup;
    private FileStream? _lock;
    private readonly SmtpDeliveryClient _outbound;
    private readonly CertificateReloader _certificates;
    private readonly IReadOnlyList<System.Net.Sockets.Socket>? _boundSockets;

    /// <summary>Wires the server; <c>boundSockets</c> are listening sockets bound beforehand, one per listener in order (`serve` binds them as root, then gives up root); null: Start binds them.</summary>
    public PosternServer(PosternOptions options, ILogger logger, TimeProvider? time = null, IDurability? durability = null, string? configFile = null, bool dev = false,
        IReadOnlyList<System.Net.Sockets.Socket>? boundSockets = null, Postern.MailAuth.Dns.IMailAuthDns? mailAuthDns = null)
    {
        _boundSockets = boundSockets;
        _options = options;
        _logger = logger;
        _configFile = configFile;
        _dev = dev;
        _time = time ?? TimeProvider.System;
        Storage.DataDirectory.Secure(options.DataDirectory);
        Spool = new Spool(Path.Combine(options.DataDirectory, "queue"), durability);
        Accounts = AccountStore.Open(options.ResolvePath(options.Accounts.PasswdFile),
            (file, n) => Log.Reloaded(logger, file, n), (file, e) => Log.ReloadFailed(logger, file, e.Message));
        Aliases = configFile is null
            ? null
            : new ReloadingFile<Dictionary<string, List<string>>>(configFile, f => NormalizeAliases(ConfigurationLoader.Load(f, dev).Aliases),
                NormalizeAliases(options.Aliases), (file, v) => Log.Reloaded(logger, file, v.Count), (file, e) => Log.ReloadFailed(logger, file, e.Message));
        // SRS (MailAuth.Srs): one secret in DATA/srs.secret, made at first start; copy it to every
        // server that should accept the bounces (a backup MX, or PostSRSd during a move).
        var srs = options.MailAuth.Srs
            ? new Postern.MailAuth.Srs.SrsRewriter(Postern.MailAuth.Srs.SrsRewriter.LoadOrCreateSecret(Path.Combine(options.DataDirectory, SrsSecretFile)), _time)
            : null;
        // Local domains and (without a configuration file) aliases are those of the configuration in force.
        AddressBook = new AddressBook(() => InForce().LocalDomains, Accounts, () => Aliases?.Value ?? InForce().Aliases, srs);
        var maildir = new Maildir(Path.Combine(options.DataDirectory, "mail"), options.Hostname, durability ?? Durability.Instance);
        // One DNS client (and cache) for MX lookups and mail authentication.
        var dns = Postern.MailAuth.Dns.DnsClientMailAuthDns.CreateClient(options.Dns.Servers.Select(Postern.MailAuth.Dns.DnsClientMailAuthDns.ParseServer).ToList(), options.Dns.Timeout);
        var dnsFailures = new DnsFailureLog(logger, _time);
        var resolver = new MxResolver(dns, failed: dnsFailures.Report);
        _resolver = resolver;
        // DKIM keys for outgoing mail of local users: DATA/dkim/DOMAIN.SELECTOR.key (`postern dkim keygen`).
        // An unusable key stops the start; later, a change is read on use and a bad one keeps the keys in use.
        var dkimFolder = Path.Combine(options.DataDirectory, Postern.MailAuth.Dkim.DkimKeyStore.FolderName);
        DkimKeys = new ReloadingFile<Postern.MailAuth.Dkim.DkimKeyStore>(dkimFolder, Postern.MailAuth.Dkim.DkimKeyStore.Load, Postern.MailAuth.Dkim.DkimKeyStore.Empty,
            (folder, keys) => Log.Reloaded(logger, folder, keys.Keys.Count), (folder, e) => Log.ReloadFailed(logger, folder, e.Message), mustLoadFirst: true);
        var sealer = options.MailAuth.ArcSeal ? new Postern.MailAuth.Arc.ArcSealer(() => DkimKeys.Value, _time) : null;
        _outbound = new SmtpDeliveryClient(options.Hostname, _time, signer: new Postern.MailAuth.Dkim.DkimSigner(() => DkimKeys.Value, _time),
            forwarder: new Forwarder(srs, sealer, options.Hostname, AddressBook.IsLocalDomain), bind: options.Delivery.BindAddresses.Select(IPAddress.Parse).ToList());
        Control = new QueueControl(Spool.Root);
        var bounces = new BounceWriter(Spool, AddressBook, options.Hostname, () => InForce().Options.Domains[0], () => InForce().Options.Delivery.MaxQueueLifetime, _time,
            trusted: ip => InForce().IsTrusted(ip));
        var first = Configure(options, 1, previous: null);
        // Delivery.Lmtp: local mail goes to the LMTP server (Dovecot: Sieve, quotas) instead of the Maildir.
        var lmtp = options.Delivery.Lmtp is { } lmtpEndpoint ? new LmtpDelivery(lmtpEndpoint, options.Hostname) : null;
        Runner = new QueueRunner(Spool, AddressBook, maildir, first.Remote, bounces, options.Delivery, logger, _time, Control, lmtp) { Configuration = InForce };
        _certificates = new CertificateReloader(options, logger, _time);
        Pickup = OperatingSystem.IsLinux() ? new Pickup(options.DataDirectory, () => InForce().Options, Spool, AddressBook, logger, _time, m => Runner.Enqueue(m.Id, m)) : null;
        // Filters.Milters: made once, shared by every session (each knows whether its milter is down); docs/filters.md.
        Milters = options.Filters.Milters.Select(m => new Filters.Milter.Milter(m, _time, logger)).ToList();
        // mailAuthDns: the seam of IMailAuthDns, for tests that make DNS fail in a chosen way.
        mailAuthDns ??= new Postern.MailAuth.Dns.DnsClientMailAuthDns(dns, dnsFailures.Report);
        Context = new ServerContext
        {
            Configuration = first,
            Spool = Spool,
            AddressBook = AddressBook,
            AuthFailures = new AuthFailures(_time, () => InForce().Options.Accounts, new BanList(Path.Combine(options.DataDirectory, "bans.json"), _time, b => Log.BanReleased(logger, b.Key, "postern bans release")),
                // The real fsync, not the durability seam: the tests that make the spool's disk fail must not fail (or hold) this file's writes.
                new KnownAddresses(Path.Combine(options.DataDirectory, "logins.json"), _time, () => Accounts.Addresses.Count,
                    writeFailed: e => Log.KnownAddressesWriteFailed(logger, "logins.json", e))),
            Tls = _certificates.ServerOptions,
            MailAuthDns = mailAuthDns,
            // Made here, once: a failure to make one is a failure to start, never a cached failure of every message.
            Spf = new Postern.MailAuth.Spf.SpfEvaluator(mailAuthDns, options.Hostname, _time),
            Dkim = new Postern.MailAuth.Dkim.DkimVerifier(mailAuthDns, _time),
            Arc = new Postern.MailAuth.Arc.ArcChainVerifier(mailAuthDns),
            Dmarc = new Postern.MailAuth.Dmarc.DmarcEvaluator(mailAuthDns),
            Logger = logger,
            Time = _time,
            Committed = m => Runner.Enqueue(m.Id, m),
            ShuttingDown = _draining.Token,
        };
    }

    /// <summary>The configuration in force (what a reload last published).</summary>
    private ServerConfiguration InForce() => Context.Configuration;

    /// <summary>The SRS secret's file in the data directory.</summary>
    public const string SrsSecretFile = "srs.secret";

    public Spool Spool { get; }

    /// <summary>The configured milters (Filters.Milters), in order; a session opens them with <see cref="Filters.Milter.MilterChain.Open"/>.</summary>
    public IReadOnlyList<Filters.Milter.Milter> Milters { get; }

    public AccountStore Accounts { get; }
    public ReloadingFile<Dictionary<string, List<string>>>? Aliases { get; }
    public AddressBook AddressBook { get; }

    /// <summary>The DKIM signing keys in DATA/dkim, read again when a file there changes.</summary>
    public ReloadingFile<Postern.MailAuth.Dkim.DkimKeyStore> DkimKeys { get; }
    public QueueRunner Runner { get; }
    public QueueControl Control { get; }

    /// <summary>Queues what `postern sendmail` left in DATA/maildrop/ (Linux only: it trusts the kernel's file owners).</summary>
    public Pickup? Pickup { get; }
    public ServerContext Context { get; }
    public IReadOnlyList<SmtpListener> Listeners => _listeners;

    /// <summary>Alias keys and local targets compare without case.</summary>
    private static Dictionary<string, List<string>> NormalizeAliases(Dictionary<string, List<string>> aliases) =>
        aliases.ToDictionary(kv => kv.Key.ToLowerInvariant(), kv => kv.Value, StringComparer.OrdinalIgnoreCase);

    /// <summary>Takes the data directory's lock (another server holding it fails here), binds every listener (so does a port in use), recovers the queue and starts serving.</summary>
    public void Start()
    {
        // One server per data directory; a `postern queue` command holds the lock only for a moment.
        _lock = Control.Lock(TimeSpan.FromSeconds(5))
            ?? throw new IOException($"another Postern server is using {_options.DataDirectory} (it holds {Control.LockPath})");
        try
        {
            StartHoldingTheLock();
        }
        catch
        {
            _lock.Dispose();
            _lock = null;
            throw;
        }
    }

    private void StartHoldingTheLock()
    {
        // Every connection is a file: the soft limit goes to the hard one, and a limit under the caps is said.
        if (OpenFiles.RaiseToHard() is { } files)
        {
            Log.OpenFilesLimit(_logger, files.Soft, files.Hard, files.Before);
            var caps = _options.Listeners.Sum(l => (long)_options.Limits.CapFor(l.Role));
            if (files.Soft < caps + 256)
            {
                // 256: the spool, the logs, outbound connections and the runtime's own.
                Log.OpenFilesTooFew(_logger, files.Soft, caps);
            }
        }
        // Per client across every listener; the cap of open connections is each listener's own
        // (Listening/ListenerSlots: port 25 can never take the slots of 587 and 465).
        var limiter = new ConnectionLimiter(() => (int.MaxValue, Context.Configuration.Options.Limits.MaxConnectionsPerIp));
        for (var i = 0; i < _options.Listeners.Count; i++)
        {
            var role = _options.Listeners[i].Role;
            var slots = new ListenerSlots(() => Context.Configuration.Options.Limits.CapFor(role), _time);
            var listener = new SmtpListener(Context, _options.Listeners[i], limiter, _sessions, slots);
            listener.Use(_boundSockets?[i] ?? ListenerSocket.Bind(_options.Listeners[i], i));
            _listeners.Add(listener);
        }
        Spool.CleanTemporary();
        var recovered = Runner.Recover();
        Log.QueueRecovered(_logger, recovered, Directory.EnumerateFiles(Spool.CorruptDir).Count());
        _delivery = Runner.RunAsync(_stopDelivery.Token);
        // `postern queue` hands its requests to the running server through queue/control/.
        // `postern reload` comes the same way (a request with Action "reload").
        _control = Task.Run(() => Control.ServeAsync(ApplyControlAsync, (request, e) => Log.QueueControlFailed(_logger, request, e.Message, e), _stopDelivery.Token));
        // `postern sendmail` leaves mail in DATA/maildrop/: what waits there since the last stop, then what comes.
        if (Pickup is not null)
        {
            _pickup = Task.Run(() => Pickup.RunAsync(_stopDelivery.Token));
        }
        for (var i = 0; i < _listeners.Count; i++)
        {
            var l = _options.Listeners[i];
            Log.Listening(_logger, l.Name, l.Role.ToString().ToLowerInvariant(), _listeners[i].LocalEndPoint.ToString());
            _acceptLoops.Add(_listeners[i].AcceptLoopAsync(_draining.Token));
        }
        _certificates.Start(); // reload on renewal, daily expiry check
        Log.Started(_logger, _listeners.Count, _options.DataDirectory);
    }

    /// <summary>Graceful stop: no new connections, idle sessions told 421 4.3.2, transactions finish.</summary>
    public async Task StopAsync(string reason)
    {
        Log.Stopping(_logger, reason);
        await _draining.CancelAsync();
        await Task.WhenAll(_acceptLoops);
        // Transactions in flight get Limits.ShutdownTimeout to finish; then delivery stops too. On the
        // wall clock: a stop must end even when the injected clock stands still (a test's fake one,
        // with a session waiting on it).
        await Task.WhenAny(_sessions.WhenIdle(), Task.Delay(Context.Configuration.Options.Limits.ShutdownTimeout));
        await _stopDelivery.CancelAsync();
        if (_delivery is not null)
        {
            await _delivery;
        }
        if (_control is not null)
        {
            await _control;
        }
        if (_pickup is not null)
        {
            try
            {
                await _pickup;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.PickupFailed(_logger, "-", e.Message); // a stop goes on; the files wait for the next start
            }
        }
        await _outbound.DisposeAsync(); // QUIT to the connections kept for reuse
        Context.AuthFailures.Known.Flush(); // the logins of the last WriteDelay, written at once
        Log.Stopped(_logger, _sessions.Count);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_draining.IsCancellationRequested)
        {
            await StopAsync("dispose");
        }
        _certificates.Dispose();
        Context.AuthFailures.Known.Dispose();
        await Spool.DisposeAsync();
        if (_lock is not null)
        {
            await _lock.DisposeAsync();
        }
        _draining.Dispose();
        _stopDelivery.Dispose();
    }
}
