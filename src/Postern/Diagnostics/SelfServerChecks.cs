using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Postern.MailAuth.Dns;
using Postern.Server.Configuration;
using Postern.Server.Listening;
using Postern.Server.Queue;

namespace Postern.Diagnostics;

/// <summary>
/// The parts of `diag self` that look at the server rather than at DNS: outbound port 25 (or the
/// smarthost), the certificate, the listeners, the queue.
/// </summary>
internal static class SelfServerChecks
{
    /// <summary>More messages than this waiting in the queue get a warning.</summary>
    public const int BacklogWarning = 1000;

    // ---- outbound ----

    /// <summary>
    /// Outbound port 25, tried against <paramref name="probe"/>; with Relay.Smarthost configured port 25
    /// is not needed, and the smarthost's port is tried instead.
    /// </summary>
    public static async Task OutboundAsync(DiagContext ctx, string probe, CancellationToken cancellationToken)
    {
        if (ctx.Options.Relay.Smarthost is { } smarthost)
        {
            ctx.Add(new DiagStep("port25", "outbound port 25", DiagStatus.Info, "reading Relay.Smarthost",
                $"not needed: remote mail goes through the smarthost {smarthost.Host}:{smarthost.Port} (Relay.Smarthost)",
                Data: new JsonObject { ["smarthost"] = $"{smarthost.Host}:{smarthost.Port}" }));
            await ProbeAsync(ctx, "smarthost", $"smarthost {smarthost.Host}:{smarthost.Port}", smarthost.Host, smarthost.Port, smarthost.Tls == "implicit", cancellationToken);
            return;
        }
        var (host, port) = ParseHostPort(probe, 25)!.Value;
        await ProbeAsync(ctx, "port25", $"outbound port {port}", host, port, implicitTls: false, cancellationToken);
    }

    private static async Task ProbeAsync(DiagContext ctx, string kind, string title, string host, int port, bool implicitTls, CancellationToken cancellationToken)
    {
        var smarthost = kind == "smarthost";
        var data = new JsonObject { ["host"] = host, ["port"] = port };
        IPAddress? address = PortCheck.IsIpLiteral(host, out var literal) ? literal : null;
        if (address is null)
        {
            var a = await ctx.WaitAsync($"asking for the address of {host}", DnsRecordChecks.AllAddressesAsync(ctx, host, cancellationToken));
            address = a.Records.FirstOrDefault();
        }
        if (address is null)
        {
            ctx.Add(new DiagStep(kind, title, smarthost ? DiagStatus.Fail : DiagStatus.Warn, $"A and AAAA of {host}, asking {ctx.DnsDescription}", "no address", $"{kind}_unresolved",
                smarthost ? $"the smarthost {host} has no address: remote mail cannot leave" : $"{host} has no address here, so outbound port {port} could not be tried",
                smarthost ? "check Relay.Smarthost.Host against the provider's instructions" : "check this host's DNS (Dns.Servers), or give another --probe HOST[:PORT]", data));
            return;
        }
        data["address"] = address.ToString();
        var bind = ctx.Options.Delivery.BindAddresses.Select(b => IPAddress.TryParse(b, out var ip) ? ip : null).OfType<IPAddress>().FirstOrDefault(b => b.AddressFamily == address.AddressFamily);
        var endpoint = SmtpProbe.Describe(address, port);
        var tried = $"a TCP connection to {host} ({endpoint}){(bind is null ? "" : $" from {bind} (Delivery.BindAddresses)")}{(implicitTls ? ", TLS," : "")} then its greeting (no mail is sent)";
        var blockedFix = smarthost
            ? "check Relay.Smarthost.Host and Port against the provider's instructions (587 with Tls starttls, 465 with implicit), and that no firewall of this host or network stops the connection"
            : "ask the provider to open outbound port 25 for this server, or send through a smarthost: set Relay.Smarthost (Host, Port 587, Username, PasswordFile) to your provider's or a relay service's submission server";
        SmtpProbe probe;
        try
        {
            probe = await ctx.WaitAsync($"connecting to {endpoint}", SmtpProbe.ConnectAsync(address, port, ctx.Timeout, bind, cancellationToken));
        }
        catch (SmtpProbeException e)
        {
            data["failure"] = e.Failure.Word();
            var (code, cause) = e.Failure switch
            {
                ProbeFailure.Timeout => ("blocked", smarthost
                    ? $"no answer from {endpoint} within {SmtpProbe.Seconds(ctx.Timeout)}: a firewall drops the connection, or the port is wrong"
                    : $"no answer from {endpoint} within {SmtpProbe.Seconds(ctx.Timeout)}: outbound port {port} is probably blocked by your internet or hosting provider or a firewall (most residential and many cloud providers block port 25)"),
                ProbeFailure.Refused => ("refused", smarthost
                    ? $"{endpoint} refused the connection: nothing listens on that port, or a firewall rejects it"
                    : $"{endpoint} refused the connection: a firewall on the way rejects outbound port {port}, or nothing listens at the probe host"),
                ProbeFailure.Unreachable => ("unreachable", $"no route to {address}: this host has no internet connection for that address family"),
                _ => ("reset", $"the connection to {endpoint} failed: {e.Message} (a firewall or a provider's proxy interferes)"),
            };
            ctx.Add(new DiagStep(kind, title, DiagStatus.Fail, tried, e.Message, $"{kind}_{code}", cause, blockedFix, data));
            return;
        }
        await using (probe)
        {
            data["connect_ms"] = Math.Round(probe.ConnectTime.TotalMilliseconds);
            try
            {
                if (implicitTls)
                {
                    await ctx.WaitAsync($"TLS with {endpoint}", probe.HandshakeAsync(host, cancellationToken));
                }
                var greeting = await ctx.WaitAsync($"waiting for the greeting of {endpoint}", probe.ReadReplyAsync(cancellationToken));
                data["greeting"] = greeting.ToString();
                if (greeting.Code != 220)
                {
                    ctx.Add(new DiagStep(kind, title, smarthost ? DiagStatus.Fail : DiagStatus.Warn, tried, $"connected in {probe.ConnectTime.TotalMilliseconds:0} ms; greeting: {SmtpProbe.Printable(greeting.ToString())}", $"{kind}_greeting",
                        $"{host} turns this server away at the greeting: its address is likely on a blocklist or has a poor reputation there",
                        $"run postern diag dnsbl {probe.Local.Address} and follow its advice{(smarthost ? "; ask the smarthost's provider" : "")}", data));
                    return;
                }
                ctx.Add(new DiagStep(kind, title, DiagStatus.Pass, tried, $"connected in {probe.ConnectTime.TotalMilliseconds:0} ms; greeting: {SmtpProbe.Printable(greeting.ToString())}", Data: data));
            }
            catch (SmtpProbeException e)
            {
                data["failure"] = e.Failure.Word();
                if (e.Failure == ProbeFailure.Tls)
                {
                    ctx.Add(new DiagStep(kind, title, DiagStatus.Fail, tried, $"connected; {e.Message}", $"{kind}_tls",
                        "the TLS handshake failed: Relay.Smarthost.Tls is implicit, but the port may expect STARTTLS first (587), or the certificate is refused",
                        "set Relay.Smarthost.Tls to starttls for port 587, implicit for port 465", data));
                    return;
                }
                ctx.Add(new DiagStep(kind, title, smarthost ? DiagStatus.Fail : DiagStatus.Warn, tried, $"connected in {probe.ConnectTime.TotalMilliseconds:0} ms; then {e.Message}", $"{kind}_no_greeting",
                    $"the port opens but no SMTP greeting came: a provider's proxy or firewall may intercept port {port}, or {host} is slow",
                    $"try again with a longer --timeout; if it persists, {blockedFix}", data));
            }
        }
    }

    /// <summary>HOST, HOST:PORT, [IPv6]:PORT or a bare IPv6 address; null when it is none of these.</summary>
    public static (string Host, int Port)? ParseHostPort(string s, int defaultPort)
    {
        if (IPAddress.TryParse(s, out var bare) && bare.AddressFamily == AddressFamily.InterNetworkV6 && !s.StartsWith('['))
        {
            return (bare.ToString(), defaultPort);
        }
        string host;
        var port = defaultPort;
        if (s.StartsWith('['))
        {
            var close = s.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                return null;
            }
            host = s[1..close];
            var rest = s[(close + 1)..];
            if (rest.Length > 0 && (!rest.StartsWith(':') || !int.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out port)))
            {
                return null;
            }
        }
        else
        {
            var colon = s.LastIndexOf(':');
            host = colon < 0 ? s : s[..colon];
            if (colon >= 0 && !int.TryParse(s[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port))
            {
                return null;
            }
        }
        return host.Length == 0 || port is < 1 or > 65535 ? null : (host, port);
    }

    // ---- certificate ----

    /// <summary>The certificate in use: readable and its key matching, in its validity period and not about to leave it, for Hostname, trusted.</summary>
    public static void Certificate(DiagContext ctx)
    {
        var o = ctx.Options;
        var (certPath, keyPath) = TlsCertificates.Paths(o);
        var data = new JsonObject { ["path"] = certPath };
        var tried = $"reading {certPath} and {keyPath}";
        if (!File.Exists(certPath))
        {
            if (o.Tls.Generate)
            {
                ctx.Add(new DiagStep("tls.certificate", "TLS certificate", DiagStatus.Info, tried,
                    "not made yet: with Tls.Generate the server makes a self-signed one at its first start", Data: data));
                return;
            }
            ctx.Add(new DiagStep("tls.certificate", "TLS certificate", DiagStatus.Fail, tried, "the file does not exist", "tls_missing",
                "the server cannot start its listeners without its certificate",
                "set Tls.CertificatePath and Tls.KeyPath to the PEM files (for Let's Encrypt: fullchain.pem and privkey.pem)", data));
            return;
        }
        ServedCertificate served;
        X509Certificate2Collection all = [];
        try
        {
            served = TlsCertificates.Load(certPath, keyPath);
            all.ImportFromPemFile(certPath);
        }
        catch (Exception e) when (e is IOException or CryptographicException or UnauthorizedAccessException or ArgumentException)
        {
            var denied = e is UnauthorizedAccessException;
            ctx.Add(new DiagStep("tls.certificate", "TLS certificate", denied ? DiagStatus.Warn : DiagStatus.Fail, tried, e.Message, "tls_unreadable",
                denied ? "the files are not readable by this user, so the certificate was not checked" : "the server cannot use these files: not PEM, or the key is not the certificate's",
                denied ? "run the check as the user the server runs as" : "set Tls.CertificatePath to the PEM chain (leaf first) and Tls.KeyPath to its private key", data));
            return;
        }
        var leaf = served.Leaf;
        var now = ctx.Time.GetUtcNow();
        var left = served.NotAfter - now;
        var names = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames()).ToList();
        data["subject"] = leaf.Subject;
        data["issuer"] = leaf.Issuer;
        data["names"] = DnsRecordChecks.Array(names);
        data["not_before"] = new DateTimeOffset(leaf.NotBefore.ToUniversalTime(), TimeSpan.Zero).ToString("O", CultureInfo.InvariantCulture);
        data["not_after"] = served.NotAfter.ToString("O", CultureInfo.InvariantCulture);
        data["days_left"] = (int)Math.Floor(left.TotalDays);
        data["fingerprint_sha256"] = served.Fingerprint;
        var facts = $"{leaf.Subject}, issued by {leaf.Issuer}, valid until {served.NotAfterText}";
        var renew = "renew it (certbot renew, or your ACME client) and make sure the renewal runs by itself; the server picks up the new files without a restart";
        if (left <= TimeSpan.Zero)
        {
            ctx.Add(new DiagStep("tls.certificate", "TLS certificate", DiagStatus.Fail, tried, $"{facts}: expired {Age(-left)} ago", "tls_expired",
                "senders that check certificates (MTA-STS, DANE) refuse to deliver, and mail clients refuse to connect", renew, data));
        }
        else if (leaf.NotBefore.ToUniversalTime() > now.UtcDateTime)
        {
            ctx.Add(new DiagStep("tls.certificate", "TLS certificate", DiagStatus.Fail, tried, $"{facts}: not valid before {data["not_before"]}", "tls_not_yet_valid",
                "the certificate is not valid yet: this host's clock is wrong, or the certificate was made with a wrong date",
                "check the clock (timedatectl, NTP), or make a new certificate", data));
        }
        else if (left < PortCheck.ExpirySoon)
        {
            ctx.Add(new DiagStep("tls.certificate", "TLS certificate", DiagStatus.Warn, tried, $"{facts}: expires in {Age(left)}", "tls_expiring",
                $"it expires in less than {PortCheck.ExpirySoon.TotalDays:0} days: automatic renewal (usually at 30 days left) seems not to work", renew, data));
        }
        else
        {
            ctx.Add(new DiagStep("tls.certificate", "TLS certificate", DiagStatus.Pass, tried, $"{facts}: {Age(left)} left; the key matches", Data: data));
        }

        var nameData = new JsonObject { ["hostname"] = o.Hostname, ["names"] = DnsRecordChecks.Array(names) };
        var nameTried = $"matching the certificate's names against Hostname {o.Hostname}";
        ctx.Add(leaf.MatchesHostname(o.Hostname)
            ? new DiagStep("tls.name", "certificate name", DiagStatus.Pass, nameTried, $"covers {o.Hostname}", Data: nameData)
            : new DiagStep("tls.name", "certificate name", DiagStatus.Warn, nameTried, $"for {(names.Count > 0 ? string.Join(", ", names) : leaf.Subject)}, not {o.Hostname}", "tls_name_mismatch",
                $"clients that connect by the name {o.Hostname} (mail programs on 587/465, senders that check MTA-STS or DANE) refuse the certificate",
                $"get a certificate that names {o.Hostname} (certbot certonly -d {o.Hostname}), or set Hostname to a name it covers", nameData));

        using var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid; // expiry is the step above
        foreach (var c in all.Where(c => c.Thumbprint != leaf.Thumbprint))
        {
            chain.ChainPolicy.ExtraStore.Add(c);
        }
        var trusted = chain.Build(leaf);
        var selfSigned = leaf.SubjectName.RawData.AsSpan().SequenceEqual(leaf.IssuerName.RawData);
        var problems = chain.ChainStatus.Select(s => s.Status).Where(s => s != X509ChainStatusFlags.NoError).Distinct().ToList();
        var chainData = new JsonObject { ["trusted"] = trusted, ["self_signed"] = selfSigned, ["chain_length"] = chain.ChainElements.Count, ["problems"] = DnsRecordChecks.Array(problems.Select(p => p.ToString())) };
        const string chainTried = "building the chain from the certificate file to a root this machine trusts";
        ctx.Add(trusted
            ? new DiagStep("tls.chain", "certificate chain", DiagStatus.Pass, chainTried, $"trusted, through {chain.ChainElements.Count} certificates to {chain.ChainElements[^1].Certificate.Subject}", Data: chainData)
            : new DiagStep("tls.chain", "certificate chain", DiagStatus.Warn, chainTried,
                selfSigned ? "self-signed" : $"not trusted: {string.Join(", ", problems)}", "tls_untrusted",
                selfSigned
                    ? $"a self-signed certificate{(o.Tls.Generate && string.IsNullOrEmpty(o.Tls.CertificatePath) ? " (the one Tls.Generate makes)" : "")}: servers sending on port 25 usually accept it, but mail programs on 587/465 refuse it or warn, and MTA-STS senders refuse it"
                    : "the chain does not lead to a trusted root: the file may lack the intermediate certificates (use the full chain), or the issuer is not public",
                "use a certificate from a public authority (Let's Encrypt: certbot certonly -d HOSTNAME) and set Tls.CertificatePath to its full chain (fullchain.pem) and Tls.KeyPath to its key", chainData));
    }

    // ---- listeners ----

    /// <summary>Each listener accepts connections on its endpoint (a wildcard address is tried on loopback), and greets.</summary>
    public static async Task ListenersAsync(DiagContext ctx, CancellationToken cancellationToken)
    {
        var o = ctx.Options;
        var trusted = o.Relay.TrustedNetworks.Select(n => IPNetwork.TryParse(n, out var net) ? net : (IPNetwork?)null).OfType<IPNetwork>().ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var l in o.Listeners)
        {
            var name = l.Name.Length > 0 ? l.Name : l.Role.ToString().ToLowerInvariant();
            var id = DnsRecordChecks.Id("listener." + name);
            while (!seen.Add(id))
            {
                id += "_";
            }
            var title = $"listener {name} ({l.Role.ToString().ToLowerInvariant()}, {l.Endpoint})";
            var data = new JsonObject { ["name"] = name, ["endpoint"] = l.Endpoint, ["role"] = l.Role.ToString().ToLowerInvariant() };
            if (!IPEndPoint.TryParse(l.Endpoint, out var endpoint))
            {
                ctx.Add(new DiagStep(id, title, DiagStatus.Fail, $"reading {l.Endpoint}", "not IP:port", "listener_down",
                    "the endpoint is not IP:port, so the server cannot listen there", "set Listeners[].Endpoint to IP:port, e.g. 0.0.0.0:25", data));
                continue;
            }
            if (endpoint.Port == 0)
            {
                ctx.Add(new DiagStep(id, title, DiagStatus.Info, $"reading {l.Endpoint}", "port 0: the system picks a free port at each start, so there is nothing to try", Data: data));
                continue;
            }
            var address = endpoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : endpoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : endpoint.Address;
            var target = new IPEndPoint(address, endpoint.Port);
            var shown = SmtpProbe.Describe(address, endpoint.Port);
            data["tried"] = shown;
            // Triage holds the greeting back from clients on trial, and takes a word before it as a
            // spam bot's: only the connection is tried then.
            // Behind a proxy the listener waits for a PROXY header from its proxies and drops anyone
            // else: only the connection is tried then too.
            var onTrial = l.ProxyProtocol || (l.Role == ListenerRole.Mx && o.Triage.Enabled && o.Triage.GreetingPause > TimeSpan.Zero && !trusted.Any(n => n.Contains(address)));
            var tried = l.ProxyProtocol
                ? $"a TCP connection to {shown} (the greeting is not awaited: with ProxyProtocol only the proxy may speak first)"
                : onTrial
                ? $"a TCP connection to {shown} (the greeting is not awaited: Triage.GreetingPause holds it back {o.Triage.GreetingPause.TotalSeconds:0} s)"
                : $"a TCP connection to {shown}{(l.Role == ListenerRole.Submissions ? ", TLS," : "")} then its greeting";
            await ListenerAsync(ctx, id, title, tried, target, shown, l.Role, onTrial, data, cancellationToken);
        }
    }

    private static async Task ListenerAsync(DiagContext ctx, string id, string title, string tried, IPEndPoint target, string shown, ListenerRole role, bool onTrial, JsonObject data, CancellationToken cancellationToken)
    {
        DiagStep Failed(ProbeFailure failure, string message)
        {
            data["failure"] = failure.Word();
            return failure switch
            {
                ProbeFailure.Refused => new DiagStep(id, title, DiagStatus.Fail, tried, message, "listener_down",
                    $"nothing listens on {shown}: the server is not running, or could not take the port (another program has it, or a port under 1024 without the right to bind it)",
                    "start the server (systemctl start postern, or postern serve) and read its log for a bind error", data),
                ProbeFailure.Timeout => new DiagStep(id, title, DiagStatus.Fail, tried, message, "listener_timeout",
                    $"no answer from {shown}: a firewall on this host drops the connection, or the server is stuck",
                    "check the host's firewall (nft list ruleset, iptables -L) and the server's log", data),
                _ => new DiagStep(id, title, DiagStatus.Fail, tried, message, "listener_broken",
                    "the connection is made but broke before a greeting came", "read the server's log for the connection", data),
            };
        }
        if (onTrial)
        {
            using var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(ctx.Timeout);
            try
            {
                await ctx.WaitAsync($"connecting to {shown}", socket.ConnectAsync(target, cts.Token).AsTask());
                ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, "accepting connections", Data: data));
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                ctx.Add(Failed(ProbeFailure.Timeout, $"no answer within {SmtpProbe.Seconds(ctx.Timeout)}"));
            }
            catch (SocketException e)
            {
                ctx.Add(Failed(e.SocketErrorCode == SocketError.ConnectionRefused ? ProbeFailure.Refused : ProbeFailure.Closed,
                    e.SocketErrorCode == SocketError.ConnectionRefused ? $"{shown}: connection refused" : $"{shown}: {e.Message}"));
            }
            return;
        }
        SmtpProbe probe;
        try
        {
            probe = await ctx.WaitAsync($"connecting to {shown}", SmtpProbe.ConnectAsync(target.Address, target.Port, ctx.Timeout, cancellationToken: cancellationToken));
        }
        catch (SmtpProbeException e)
        {
            ctx.Add(Failed(e.Failure, e.Message));
            return;
        }
        await using (probe)
        {
            try
            {
                if (role == ListenerRole.Submissions)
                {
                    await ctx.WaitAsync($"TLS with {shown}", probe.HandshakeAsync(ctx.Options.Hostname, cancellationToken));
                }
                var greeting = await ctx.WaitAsync($"waiting for the greeting of {shown}", probe.ReadReplyAsync(cancellationToken));
                data["greeting"] = greeting.ToString();
                var saw = $"greeting: {SmtpProbe.Printable(greeting.ToString())}";
                ctx.Add(greeting.Code == 220
                    ? new DiagStep(id, title, DiagStatus.Pass, tried, saw, Data: data)
                    : new DiagStep(id, title, DiagStatus.Warn, tried, saw, "listener_greeting",
                        "the server turns connections away at the greeting (too many connections, or this address is refused)",
                        "read the server's log for the connection; Limits.MaxConnections and Limits.MaxConnectionsPerIp bound how many it takes", data));
            }
            catch (SmtpProbeException e)
            {
                ctx.Add(Failed(e.Failure == ProbeFailure.Timeout ? ProbeFailure.Closed : e.Failure, e.Message));
            }
        }
    }

    // ---- queue ----

    /// <summary>How many messages wait in the queue, and how long the oldest has; read from the spool files, as `postern queue summary` does.</summary>
    public static async Task QueueAsync(DiagContext ctx)
    {
        var o = ctx.Options;
        var queueDir = Path.Combine(o.DataDirectory, "queue");
        var tried = $"reading the queue in {queueDir}";
        var data = new JsonObject { ["folder"] = queueDir };
        if (!Directory.Exists(Path.Combine(queueDir, "messages")))
        {
            data["messages"] = 0;
            ctx.Add(new DiagStep("queue", "queue", DiagStatus.Pass, tried, "no queue yet (the server makes it at its first start)", Data: data));
            return;
        }
        int messages = 0, recipients = 0, deferred = 0, held = 0;
        (QueueId Id, DateTimeOffset Received, RecipientState Waiting)? oldest = null;
        try
        {
            var spool = new Spool(queueDir);
            try
            {
                foreach (var entry in QueueEntries.All(spool))
                {
                    var waiting = entry.Waiting.ToList();
                    if (waiting.Count == 0)
                    {
                        continue;
                    }
                    if (entry.Held)
                    {
                        held++;
                        continue; // held on purpose: not a delivery problem
                    }
                    messages++;
                    recipients += waiting.Count;
                    deferred += waiting.Count(r => r.Status == RecipientStatus.Deferred);
                    var m = entry.Message;
                    if (oldest is null || m.Envelope.Received < oldest.Value.Received)
                    {
                        oldest = (m.Id, m.Envelope.Received, waiting.FirstOrDefault(r => r.Status == RecipientStatus.Deferred) ?? waiting[0]);
                    }
                }
            }
            finally
            {
                await spool.DisposeAsync();
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            ctx.Add(new DiagStep("queue", "queue", DiagStatus.Warn, tried, e.Message, "queue_unreadable",
                "the queue could not be read (not readable by this user, or a file changed while it was read), so it was not checked", "run the check as the user the server runs as, or again", data));
            return;
        }
        data["messages"] = messages;
        data["recipients"] = recipients;
        data["deferred"] = deferred;
        data["held"] = held;
        if (oldest is not { } first)
        {
            ctx.Add(new DiagStep("queue", "queue", DiagStatus.Pass, tried, held == 0 ? "empty" : $"nothing waiting ({held} held)", Data: data));
            return;
        }
        var age = ctx.Time.GetUtcNow() - first.Received;
        data["oldest_id"] = first.Id.Value;
        data["oldest_age_seconds"] = Math.Round(age.TotalSeconds);
        var why = first.Waiting.Detail is { } detail ? $", last answer \"{SmtpProbe.Printable(detail)}\"" : "";
        var saw = $"{Count(messages, "message")} waiting ({Count(recipients, "recipient")}, {deferred} deferred{(held > 0 ? $", {held} held" : "")}); the oldest, {first.Id}, for {first.Waiting.Address}, waits for {Age(age)}{why}";
        var fix = $"see why with postern queue show {first.Id} (and postern queue summary for the destinations); postern diag deliver {first.Waiting.Address} walks that delivery step by step";
        if (messages > BacklogWarning)
        {
            ctx.Add(new DiagStep("queue", "queue", DiagStatus.Warn, tried, saw, "queue_backlog",
                $"more than {BacklogWarning} messages wait: deliveries are failing or slower than mail comes in", fix, data));
        }
        else if (age > o.Delivery.DelayWarningAfter)
        {
            ctx.Add(new DiagStep("queue", "queue", DiagStatus.Warn, tried, saw, "queue_old",
                $"a message waits longer than Delivery.DelayWarningAfter ({Age(o.Delivery.DelayWarningAfter)}): its destination keeps deferring it, or this server cannot reach it", fix, data));
        }
        else
        {
            ctx.Add(new DiagStep("queue", "queue", DiagStatus.Pass, tried, saw, Data: data));
        }
    }

    private static string Count(int n, string word) => n == 1 ? $"1 {word}" : $"{n} {word}s";

    /// <summary>A duration in words: 40 s, 12 min, 5 h 3 min, 3 days.</summary>
    internal static string Age(TimeSpan t) => t switch
    {
        { TotalSeconds: < 120 } => $"{t.TotalSeconds:0} s",
        { TotalMinutes: < 120 } => $"{t.TotalMinutes:0} min",
        { TotalHours: < 48 } => t.Minutes == 0 ? $"{(int)t.TotalHours} h" : $"{(int)t.TotalHours} h {t.Minutes} min",
        _ => $"{t.TotalDays:0} days",
    };
}
