using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Postern.Invocation;
using Postern.MailAuth.Dns;

namespace Postern.Diagnostics;

/// <summary>
/// `postern diag port HOST [--ports 25,587,465]`: can a sender or a mail client reach HOST, and what
/// does it find there? Per port and address: the TCP connect (refused, timed out, reset and
/// unreachable told apart), the greeting, EHLO, STARTTLS or TLS at once with its version and cipher,
/// and the certificate (chain, expiry, name). When port 25 times out while the submission ports
/// answer, the likely cause is said once: a provider that blocks port 25, and the smarthost as the way
/// round it. The steps of one connection are walked by static methods that `diag auth` shares.
/// </summary>
public sealed partial class PortCheck : IDiagVerb
{
    /// <summary>Checked when --ports is not given.</summary>
    public static IReadOnlyList<PortSpec> DefaultPorts { get; } = [new(25, PortRole.Mx), new(587, PortRole.Submission), new(465, PortRole.Submissions)];

    /// <summary>A certificate that expires sooner than this is a warning: ACME clients renew at 30 days left, so by 14 renewal has been failing for two weeks.</summary>
    public static readonly TimeSpan ExpirySoon = TimeSpan.FromDays(14);

    public string Name => "port";

    public string Usage => "diag port HOST [--ports 25,587,465]";

    public string Summary => "reach, greeting, EHLO, TLS and certificate of each port";

    public IReadOnlyList<string> Options => ["--ports"];

    public string Target(Arguments args)
    {
        if (args.Positional.Count != 1)
        {
            throw new UsageException($"{Usage}: one host name or IP address (ports go in --ports; a port may carry a role: 2525/mx, 2587/submission, 2465/submissions)");
        }
        Ports(args);
        return Host(args.Positional[0], Usage);
    }

    public async Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken)
    {
        var host = Host(args.Positional[0], Usage);
        var ports = Ports(args);
        var (addresses, resolved) = await ResolveAsync(ctx, host, cancellationToken).ConfigureAwait(false);
        ctx.Add(resolved);
        if (addresses.Count == 0)
        {
            return;
        }
        // Every port of every address at once (a timeout costs the same for one as for all); reported in the order given.
        var probes = addresses.SelectMany(a => ports.Select(p => ProbeAsync(ctx, host, a, p, addresses.Count > 1 ? "." + IdWord(a) : "", cancellationToken))).ToList();
        await ctx.WaitAsync($"trying {string.Join(", ", ports.Select(p => p.Port))} on {host}", Task.WhenAll(probes)).ConfigureAwait(false);
        foreach (var step in probes.SelectMany(p => p.Result.Steps))
        {
            ctx.Add(step);
        }
        foreach (var address in addresses)
        {
            var results = probes.Select(p => p.Result).Where(r => r.Address.Equals(address)).ToList();
            if (Port25Blocked(results, address, addresses.Count > 1 ? "." + IdWord(address) : "") is { } blocked)
            {
                ctx.Add(blocked);
            }
        }
    }

    /// <summary>The steps of one port on one address, and how its TCP connect went (null: it connected).</summary>
    private sealed record PortResult(IPAddress Address, PortSpec Spec, ProbeFailure? ConnectFailure, List<DiagStep> Steps);

    private static async Task<PortResult> ProbeAsync(DiagContext ctx, string host, IPAddress address, PortSpec spec, string suffix, CancellationToken cancellationToken)
    {
        var steps = new List<DiagStep>();
        var p = $".{spec.Port}{suffix}";
        var (probe, failure, connected) = await ConnectAsync(ctx, address, spec, "tcp" + p, cancellationToken).ConfigureAwait(false);
        steps.Add(connected);
        if (probe is null)
        {
            return new PortResult(address, spec, failure, steps);
        }
        await using (probe.ConfigureAwait(false))
        {
            if (spec.ImplicitTls)
            {
                var (tls, tlsStep) = await ImplicitTlsAsync(probe, host, spec, "tls" + p, cancellationToken).ConfigureAwait(false);
                steps.Add(tlsStep);
                if (tls is null)
                {
                    return new PortResult(address, spec, null, steps);
                }
                steps.AddRange(CertificateSteps(ctx, tls, host, spec, address, p));
                var (greeted, banner) = await GreetingAsync(probe, spec, "banner" + p, cancellationToken).ConfigureAwait(false);
                steps.Add(banner);
                if (greeted)
                {
                    steps.Add((await EhloAsync(ctx, probe, spec, "ehlo" + p, afterTls: true, cancellationToken).ConfigureAwait(false)).Step);
                }
            }
            else
            {
                var (greeted, banner) = await GreetingAsync(probe, spec, "banner" + p, cancellationToken).ConfigureAwait(false);
                steps.Add(banner);
                if (!greeted)
                {
                    return new PortResult(address, spec, null, steps);
                }
                var (ehlo, ehloStep) = await EhloAsync(ctx, probe, spec, "ehlo" + p, afterTls: false, cancellationToken).ConfigureAwait(false);
                steps.Add(ehloStep);
                if (ehlo is null)
                {
                    return new PortResult(address, spec, null, steps);
                }
                var (tls, tlsStep) = await StartTlsAsync(probe, host, spec, ehlo, "tls" + p, required: false, cancellationToken).ConfigureAwait(false);
                steps.Add(tlsStep);
                if (tls is null)
                {
                    return new PortResult(address, spec, null, steps);
                }
                steps.AddRange(CertificateSteps(ctx, tls, host, spec, address, p));
                steps.Add((await EhloAsync(ctx, probe, spec, "ehlo_tls" + p, afterTls: true, cancellationToken).ConfigureAwait(false)).Step);
            }
        }
        return new PortResult(address, spec, null, steps);
    }

    /// <summary>
    /// Port 25 timed out while a submission port of the same address answered: packets to 25 are
    /// dropped on the way, and almost always by the sender's own provider.
    /// </summary>
    private static DiagStep? Port25Blocked(List<PortResult> results, IPAddress address, string suffix)
    {
        var timedOut = results.Where(r => r.Spec.Role == PortRole.Mx && r.ConnectFailure == ProbeFailure.Timeout).Select(r => r.Spec.Port).ToList();
        var answered = results.Where(r => r.Spec.Role != PortRole.Mx && r.ConnectFailure is null).Select(r => r.Spec.Port).ToList();
        if (timedOut.Count == 0 || answered.Count == 0)
        {
            return null;
        }
        var data = new JsonObject
        {
            ["address"] = address.ToString(),
            ["timed_out_ports"] = new JsonArray([.. timedOut.Select(p => JsonValue.Create(p))]),
            ["answered_ports"] = new JsonArray([.. answered.Select(p => JsonValue.Create(p))]),
        };
        var mx = string.Join(" and ", timedOut);
        return new DiagStep("port25.blocked" + suffix, $"port {mx} blocked on the way", DiagStatus.Fail,
            $"comparing port {mx} with {string.Join(" and ", answered)} on {address}",
            $"port {mx} did not answer at all, while {string.Join(" and ", answered)} answered",
            "port25_blocked",
            $"the same host answers on {string.Join(" and ", answered)} but not on {mx}: packets to port {mx} are dropped on the way, almost always by your own provider, which blocks outbound port 25 against spam from hijacked machines (most residential ISPs and many cloud providers do); less often the host's firewall drops inbound port 25. While your provider blocks it, this machine cannot deliver to other servers' MX directly",
            "send remote mail through a smarthost on port 587 or 465 (Relay.Smarthost: Host, Port, Username, PasswordFile), or ask your provider to lift the port 25 block (some do on request for a static address with a PTR name); to tell the two apart, run `postern diag port` against the same host from another network",
            data);
    }

    /// <summary>A host name or IP address as the target; [v6] loses its brackets.</summary>
    internal static string Host(string text, string usage)
    {
        var host = text.StartsWith('[') && text.EndsWith(']') ? text[1..^1] : text;
        if (IsIpLiteral(host, out _))
        {
            return host;
        }
        if (!HostName().IsMatch(host))
        {
            throw new UsageException($"{usage}: '{text}' is not a host name or IP address{(text.Contains(':') ? " (a port goes in its own option)" : "")}");
        }
        return host.TrimEnd('.');
    }

    /// <summary>
    /// An IPv4 address in dotted quads or any IPv6 address (in brackets or not); not the short
    /// forms IPAddress also takes ("127.1", "25"), which are host names to DNS. Every check that
    /// tells an address from a name asks this.
    /// </summary>
    internal static bool IsIpLiteral(string host, out IPAddress address)
    {
        var bare = host.Length > 1 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;
        return IPAddress.TryParse(bare, out address!) && (address.AddressFamily == AddressFamily.InterNetworkV6 || bare.Count(c => c == '.') == 3);
    }

    [GeneratedRegex(@"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$")]
    private static partial Regex HostName();

    private static List<PortSpec> Ports(Arguments args)
    {
        if (args.Value("--ports") is not { } given)
        {
            return [.. DefaultPorts];
        }
        var ports = given.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => PortSpec.Parse(s, "--ports")).DistinctBy(p => p.Port).ToList();
        if (ports.Count == 0)
        {
            throw new UsageException("--ports: at least one port, e.g. 25,587,465");
        }
        return ports;
    }

    /// <summary>An address as a part of a step id (the schema allows [a-z0-9_.:-]).</summary>
    internal static string IdWord(IPAddress address) => address.ToString().Split('%')[0].ToLowerInvariant();

    /// <summary>A time as data and in words: 2026-03-01T12:00:00Z.</summary>
    internal static string When(DateTime time) => time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>A <see cref="ProbeFailure"/> as a data word: refused, timeout, reset, closed, unreachable, not_smtp, tls.</summary>
    internal static string Word(ProbeFailure failure) => failure.Word();

    // ---- The steps of one connection, shared with `diag auth` ----

    /// <summary>
    /// The host's addresses: an IP literal as it is, a name by its A and AAAA records (IPv4 first).
    /// No addresses: the step says why, and there is nothing to connect to.
    /// </summary>
    internal static async Task<(IReadOnlyList<IPAddress> Addresses, DiagStep Step)> ResolveAsync(DiagContext ctx, string host, CancellationToken cancellationToken)
    {
        const string id = "resolve";
        var title = $"address of {host}";
        if (IsIpLiteral(host, out var literal))
        {
            return ([literal], new DiagStep(id, title, DiagStatus.Info, $"{host} is an IP address", "used as it is, without DNS",
                Data: new JsonObject { ["host"] = host, ["addresses"] = new JsonArray(literal.ToString()) }));
        }
        var tried = $"A and AAAA of {host}, asking {ctx.DnsDescription}";
        var a = ctx.Dns.AAsync(host, cancellationToken);
        var aaaa = ctx.Dns.AaaaAsync(host, cancellationToken);
        await ctx.WaitAsync($"looking up {host}", Task.WhenAll(a, aaaa)).ConfigureAwait(false);
        var addresses = a.Result.Records.Concat(aaaa.Result.Records).Distinct().ToList();
        var data = new JsonObject { ["host"] = host, ["addresses"] = new JsonArray([.. addresses.Select(x => JsonValue.Create(x.ToString()))]) };
        if (addresses.Count > 0)
        {
            var missing = new[] { ("A", a.Result.Status), ("AAAA", aaaa.Result.Status) }.Where(r => r.Status == DnsStatus.TempError).Select(r => r.Item1).ToList();
            return (addresses, new DiagStep(id, title, DiagStatus.Pass, tried,
                $"{string.Join(", ", addresses)}{(missing.Count > 0 ? $" ({string.Join(" and ", missing)} gave no answer)" : "")}", Data: data));
        }
        if (a.Result.Status == DnsStatus.TempError || aaaa.Result.Status == DnsStatus.TempError)
        {
            return ([], new DiagStep(id, title, DiagStatus.Fail, tried, $"no answer within {SmtpProbe.Seconds(ctx.Timeout)}, or SERVFAIL", "dns_failed",
                $"the name servers of {host} or the resolver ({ctx.DnsDescription}) did not answer, so there is nothing to connect to",
                "try again, or ask another resolver (--dns, Dns.Servers); if the name is yours, check that its name servers answer (`postern diag dns`)", data));
        }
        return ([], new DiagStep(id, title, DiagStatus.Fail, tried, a.Result.Status == DnsStatus.NxDomain ? "the name does not exist (NXDOMAIN)" : "no A or AAAA record",
            "host_not_found",
            $"{host} has no address: a typo, or its A/AAAA record is missing (a host named by an MX record must have one, RFC 5321 §5.1)",
            $"check the name; if it is yours, publish an A record (and AAAA for IPv6) for {host}", data));
    }

    /// <summary>The TCP connect, as a step; the probe is null when it failed, and the failure says how.</summary>
    internal static async Task<(SmtpProbe? Probe, ProbeFailure? Failure, DiagStep Step)> ConnectAsync(DiagContext ctx, IPAddress address, PortSpec spec, string id, CancellationToken cancellationToken)
    {
        var where = SmtpProbe.Describe(address, spec.Port);
        var title = $"TCP connect to {where}";
        var tried = $"a TCP connection to {where} ({spec.RoleWord}), waiting up to {SmtpProbe.Seconds(ctx.Timeout)}";
        var data = new JsonObject { ["address"] = address.ToString(), ["port"] = spec.Port, ["role"] = spec.RoleWord };
        try
        {
            var probe = await SmtpProbe.ConnectAsync(address, spec.Port, ctx.Timeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            data["connect_ms"] = (int)probe.ConnectTime.TotalMilliseconds;
            return (probe, null, new DiagStep(id, title, DiagStatus.Pass, tried, $"connected in {probe.ConnectTime.TotalMilliseconds:0} ms", Data: data));
        }
        catch (SmtpProbeException e)
        {
            data["failure"] = Word(e.Failure);
            var (code, cause, fix) = ConnectAdvice(e.Failure, spec, where, ctx.Timeout);
            return (null, e.Failure, new DiagStep(id, title, DiagStatus.Fail, tried, e.Message, code, cause, fix, data));
        }
    }

    private static (string Code, string Cause, string Fix) ConnectAdvice(ProbeFailure failure, PortSpec spec, string where, TimeSpan timeout) => failure switch
    {
        ProbeFailure.Refused => ("port_refused",
            $"the host answered, but nothing listens on port {spec.Port} (or a firewall there rejects the connection)",
            $"if it is your server: check that it runs and listens on this address and port (Listeners[].Endpoint, e.g. 0.0.0.0:{spec.Port}) and that the host's firewall lets port {spec.Port} in; if it is another's, it does not take mail on port {spec.Port}"),
        ProbeFailure.Timeout => ("port_timeout",
            spec.Role == PortRole.Mx
                ? $"no answer at all within {SmtpProbe.Seconds(timeout)}: the packets are dropped on the way. On port 25 that is most often your own provider blocking outbound port 25 (most residential ISPs and many cloud providers do); else a firewall in front of the host drops them, or the host is down"
                : $"no answer at all within {SmtpProbe.Seconds(timeout)}: a firewall drops the packets (in front of the host, or on the way out of this network), or the host is down",
            spec.Role == PortRole.Mx
                ? "if other ports of the host answer, your provider probably blocks port 25: send through a smarthost (Relay.Smarthost) or ask the provider to lift the block; if it is your server, open port 25 in its firewall and the cloud provider's security group"
                : $"open port {spec.Port} in the host's firewall (and the cloud provider's security group or network ACL), and check that the host is up; if only this network cannot reach it, check the firewall here"),
        ProbeFailure.Reset => ("port_reset",
            "the connection was reset: a firewall or proxy in front of the host, or the server itself, cuts this client off",
            "if it is your server, look for a connection limit, an IP block list or a proxy in front of it; from another network, see whether the reset follows this address"),
        ProbeFailure.Unreachable => ("port_unreachable",
            $"no route from here to {where}: this machine's network cannot reach that address (often IPv6, when this machine has none)",
            "check this machine's route to the address (ip route get ADDRESS); if only the IPv6 address fails, this network lacks IPv6, or the host's AAAA record points where nothing answers"),
        _ => ("connect_failed",
            "the connection could not be made, for a reason the system names",
            "check this machine's network, then the address"),
    };

    /// <summary>The greeting (RFC 5321 §4.3.1: 220, or 554 for "no service here"); true when it was 220.</summary>
    internal static async Task<(bool Ok, DiagStep Step)> GreetingAsync(SmtpProbe probe, PortSpec spec, string id, CancellationToken cancellationToken)
    {
        var title = $"greeting on port {spec.Port}";
        var tried = $"waiting for the greeting{(spec.ImplicitTls ? ", over TLS" : "")}";
        var data = new JsonObject { ["address"] = probe.Remote.Address.ToString(), ["port"] = spec.Port };
        SmtpReply reply;
        try
        {
            reply = await probe.ReadReplyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SmtpProbeException e)
        {
            return (false, Broken(id, title, tried, e, data, spec, greeting: true));
        }
        data["reply_code"] = reply.Code;
        data["reply"] = SmtpProbe.Printable(reply.ToString());
        var saw = SmtpProbe.Printable(reply.ToString());
        return reply.Code switch
        {
            220 => (true, new DiagStep(id, title, DiagStatus.Pass, tried, saw, Data: data)),
            554 => (false, new DiagStep(id, title, DiagStatus.Fail, tried, saw, "banner_refused",
                "the server refuses this client at once (554 instead of 220, RFC 5321 §3.1): its words above say why; usually this address is on a blocklist the server uses, or the server takes mail only from certain clients",
                "if it names a blocklist, run `postern diag dnsbl` for your sending address and ask for removal; if it is your server, check its client access rules (Postern: Dnsbl.Lists, Triage)", data)),
            421 => (false, new DiagStep(id, title, DiagStatus.Fail, tried, saw, "banner_busy",
                "the server will not talk now (421): too many connections (from this address, or at all), a connection rate limit, or it is shutting down",
                "try again later; if it is your server and this persists, look at its connection limits (Postern: Limits.MaxConnections, Limits.MaxConnectionsPerIp, Limits.MaxConnectionsPerIpPerMinute) and at who holds the connections", data)),
            _ => (false, new DiagStep(id, title, DiagStatus.Fail, tried, saw, "banner_unexpected",
                "the greeting is neither 220 (ready) nor 421/554 (refused): senders give up on this server",
                "if it is your server, look at what answers on this port; a proxy or an other program may sit in front of the SMTP server", data)),
        };
    }

    /// <summary>
    /// EHLO (RFC 5321 §4.1.1.1), with the name this server would give, else an address literal of
    /// this end (§4.1.4). AUTH offered before TLS is a warning; with <paramref name="judgeAuth"/>, so
    /// is a client port that offers no AUTH over TLS (`diag auth` judges that in a step of its own).
    /// </summary>
    internal static async Task<(EhloInfo? Ehlo, DiagStep Step)> EhloAsync(DiagContext ctx, SmtpProbe probe, PortSpec spec, string id, bool afterTls, CancellationToken cancellationToken, bool judgeAuth = true)
    {
        var name = EhloName(ctx, probe);
        var title = afterTls && !spec.ImplicitTls ? $"EHLO over TLS on port {spec.Port}" : $"EHLO on port {spec.Port}";
        var tried = $"EHLO {name}";
        var data = new JsonObject { ["address"] = probe.Remote.Address.ToString(), ["port"] = spec.Port, ["ehlo_name"] = name };
        SmtpReply reply;
        try
        {
            reply = await probe.CommandAsync($"EHLO {name}", cancellationToken).ConfigureAwait(false);
        }
        catch (SmtpProbeException e)
        {
            return (null, Broken(id, title, tried, e, data, spec, greeting: false));
        }
        if (reply.Code != 250)
        {
            data["reply_code"] = reply.Code;
            data["reply"] = SmtpProbe.Printable(reply.ToString());
            return (null, new DiagStep(id, title, DiagStatus.Fail, tried, SmtpProbe.Printable(reply.ToString()), "ehlo_refused",
                "the server refused EHLO: some check the name given (that it is a fully qualified name, that it resolves), some refuse this client",
                $"if the server names the problem, fix that; a server sending should give its own fully qualified name, which resolves to its address (Postern: Hostname; without a configuration this check says EHLO {AddressLiteral(probe.Local.Address)})", data));
        }
        var ehlo = new EhloInfo(SmtpProbe.Printable(reply.Lines[0]), [.. reply.Lines.Skip(1).Select(SmtpProbe.Printable)]);
        data["greeting"] = ehlo.Greeting;
        data["capabilities"] = new JsonArray([.. ehlo.Capabilities.Select(c => JsonValue.Create(c))]);
        data["starttls"] = ehlo.StartTls;
        if (ehlo.AuthMechanisms is { } mechanisms)
        {
            data["auth_mechanisms"] = new JsonArray([.. mechanisms.Select(m => JsonValue.Create(m))]);
        }
        var saw = $"{ehlo.Greeting}; offers {(ehlo.Capabilities.Count == 0 ? "no extensions" : string.Join(", ", ehlo.Capabilities))}";
        var inTls = afterTls || spec.ImplicitTls;
        if (!inTls && ehlo.AuthMechanisms is not null)
        {
            // RFC 8314 §3, RFC 4954 §4: a password must not cross the network in clear. Postern offers AUTH only over TLS.
            return (ehlo, new DiagStep(id, title, DiagStatus.Warn, tried, saw, "auth_without_tls",
                "the server offers AUTH before TLS: a client that logs in now sends its password in clear, readable by anyone on the path (and STARTTLS can be stripped by an attacker, RFC 3207 §6)",
                "offer AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only = yes; Dovecot: disable_plaintext_auth = yes; Postern never offers it in clear)", data));
        }
        if (judgeAuth && inTls && spec.ForClients && ehlo.AuthMechanisms is null)
        {
            return (ehlo, new DiagStep(id, title, DiagStatus.Warn, tried, saw, "auth_not_offered",
                $"port {spec.Port} is for mail clients, but offers no AUTH even over TLS: clients cannot log in, so they cannot send",
                "turn AUTH on for this port (Postfix: smtpd_sasl_auth_enable = yes on the submission service; Postern offers AUTH PLAIN LOGIN over TLS on every listener), or give clients the port that has it", data));
        }
        return (ehlo, new DiagStep(id, title, DiagStatus.Pass, tried, saw, Data: data));
    }

    /// <summary>The name to say in EHLO: the configured Hostname, else this end's address as a literal.</summary>
    internal static string EhloName(DiagContext ctx, SmtpProbe probe) =>
        ctx.HasConfiguration && !string.IsNullOrWhiteSpace(ctx.Options.Hostname) ? ctx.Options.Hostname : AddressLiteral(probe.Local.Address);

    private static string AddressLiteral(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? $"[{address.MapToIPv4()}]" : address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[IPv6:{address.ToString().Split('%')[0]}]" : $"[{address}]";

    /// <summary>
    /// STARTTLS (RFC 3207) after an EHLO that offered it, then the handshake. When it is not offered:
    /// a warning for `diag port` (<paramref name="required"/> false), a failure for `diag auth`.
    /// </summary>
    internal static async Task<(TlsInfo? Tls, DiagStep Step)> StartTlsAsync(SmtpProbe probe, string host, PortSpec spec, EhloInfo ehlo, string id, bool required, CancellationToken cancellationToken)
    {
        var title = $"STARTTLS on port {spec.Port}";
        var data = new JsonObject { ["address"] = probe.Remote.Address.ToString(), ["port"] = spec.Port, ["mode"] = "starttls" };
        if (!ehlo.StartTls)
        {
            var cause = spec.Role == PortRole.Mx
                ? "the server does not offer STARTTLS: senders deliver to it in clear text, readable on the way, and senders that require TLS (MTA-STS in enforce mode, DANE) do not deliver at all"
                : "the server does not offer STARTTLS: mail clients cannot encrypt, so passwords and mail would cross the network in clear; most clients refuse to log in";
            return (null, new DiagStep(id, title, required ? DiagStatus.Fail : DiagStatus.Warn, "looking for STARTTLS in the EHLO reply", "not offered", "starttls_missing",
                required ? cause + ". This check never sends a password without TLS" : cause,
                "give the server a certificate and turn STARTTLS on (Postern offers it on every listener: Tls.CertificatePath and Tls.KeyPath; Postfix: smtpd_tls_security_level = may); if the server has it on, look for a firewall or router that strips it (\"SMTP inspection\", e.g. Cisco ASA's ESMTP fixup)", data));
        }
        const string tried = "STARTTLS, then a TLS handshake";
        SmtpReply reply;
        try
        {
            reply = await probe.CommandAsync("STARTTLS", cancellationToken).ConfigureAwait(false);
        }
        catch (SmtpProbeException e)
        {
            return (null, Broken(id, title, tried, e, data, spec, greeting: false));
        }
        if (reply.Code != 220)
        {
            data["reply_code"] = reply.Code;
            data["reply"] = SmtpProbe.Printable(reply.ToString());
            return (null, new DiagStep(id, title, DiagStatus.Fail, tried, $"STARTTLS answered {SmtpProbe.Printable(reply.ToString())}", "starttls_refused",
                "the server offers STARTTLS but refuses it: most often it cannot load its certificate or key (unreadable file, wrong path), or its TLS library is misconfigured",
                "look at the server's log at start and at this connection; check the certificate and key files it is given (Postern: Tls.CertificatePath, Tls.KeyPath; `postern config check`)", data));
        }
        return await HandshakeAsync(probe, host, spec, id, title, tried, data, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>TLS from the first byte (RFC 8314 §3.3), before any greeting.</summary>
    internal static Task<(TlsInfo? Tls, DiagStep Step)> ImplicitTlsAsync(SmtpProbe probe, string host, PortSpec spec, string id, CancellationToken cancellationToken) =>
        HandshakeAsync(probe, host, spec, id, $"TLS on port {spec.Port}", "a TLS handshake at once (implicit TLS)",
            new JsonObject { ["address"] = probe.Remote.Address.ToString(), ["port"] = spec.Port, ["mode"] = "implicit" }, cancellationToken);

    private static async Task<(TlsInfo? Tls, DiagStep Step)> HandshakeAsync(SmtpProbe probe, string host, PortSpec spec, string id, string title, string tried, JsonObject data, CancellationToken cancellationToken)
    {
        TlsInfo tls;
        try
        {
            tls = await probe.HandshakeAsync(host, cancellationToken).ConfigureAwait(false);
        }
        catch (SmtpProbeException e) when (e.Failure == ProbeFailure.Tls)
        {
            data["failure"] = "tls";
            return (null, new DiagStep(id, title, DiagStatus.Fail, tried, e.Message, "tls_failed",
                spec.ImplicitTls
                    ? $"the TLS handshake failed: port {spec.Port} may not speak TLS at once (a plain SMTP port, which wants STARTTLS), or the two sides share no TLS version or cipher (a server that offers only TLS 1.0/1.1 or old ciphers)"
                    : "the TLS handshake after STARTTLS failed: the two sides share no TLS version or cipher (a server that offers only TLS 1.0/1.1 or old ciphers), the server could not use its certificate, or something on the path broke the handshake",
                spec.ImplicitTls
                    ? $"if the port speaks plain SMTP first, check it as {spec.Port}/submission; otherwise enable TLS 1.2 and 1.3 with modern ciphers on the server (Postern does), and check its certificate and key files (Tls.CertificatePath, Tls.KeyPath)"
                    : "enable TLS 1.2 and 1.3 with modern ciphers on the server (Postern does), check its certificate and key files (Tls.CertificatePath, Tls.KeyPath), and its log for the handshake error", data));
        }
        catch (SmtpProbeException e)
        {
            return (null, Broken(id, title, tried, e, data, spec, greeting: false));
        }
        data["version"] = tls.ProtocolName;
        data["cipher"] = tls.Cipher.ToString();
        var saw = $"{tls.ProtocolName}, {tls.Cipher}";
#pragma warning disable SYSLIB0039 // recognised to warn about them, never offered
        if (tls.Protocol is SslProtocols.Tls or SslProtocols.Tls11)
#pragma warning restore SYSLIB0039
        {
            return (tls, new DiagStep(id, title, DiagStatus.Warn, tried, saw, "tls_old_version",
                $"{tls.ProtocolName} is retired (RFC 8996): many clients and senders refuse it",
                "enable TLS 1.2 and 1.3 on the server", data));
        }
        return (tls, new DiagStep(id, title, DiagStatus.Pass, tried, saw, Data: data));
    }

    /// <summary>The chain and trust, the expiry, and the name, as three steps (cert, cert_expiry, cert_name).</summary>
    private static IEnumerable<DiagStep> CertificateSteps(DiagContext ctx, TlsInfo tls, string host, PortSpec spec, IPAddress address, string p)
    {
        var facts = new CertificateFacts(tls, host, ctx.Time.GetUtcNow());
        var basics = new JsonObject { ["address"] = address.ToString(), ["port"] = spec.Port };

        var chainData = basics.DeepClone().AsObject();
        chainData["chain"] = facts.ChainJson();
        chainData["trusted"] = facts.Trusted;
        chainData["problems"] = new JsonArray([.. facts.TrustProblems.Select(x => JsonValue.Create(x.ToString()))]);
        const string chainTried = "building the certificate's chain to a root this machine trusts";
        var chainSaw = $"{facts.Leaf.Subject}, issued by {facts.Leaf.Issuer}{(tls.Chain.Count > 1 ? $" ({tls.Chain.Count} certificates in the chain)" : "")}";
        if (facts.Trusted)
        {
            yield return new DiagStep("cert" + p, $"certificate chain on port {spec.Port}", DiagStatus.Pass, chainTried, chainSaw + "; trusted", Data: chainData);
        }
        else
        {
            yield return new DiagStep("cert" + p, $"certificate chain on port {spec.Port}", spec.ForClients ? DiagStatus.Fail : DiagStatus.Warn, chainTried,
                $"{chainSaw}; not trusted: {facts.TrustWords}", "cert_untrusted",
                spec.ForClients
                    ? $"the certificate is not trusted ({facts.TrustWords}): mail clients refuse it on port {spec.Port}, or ask their users to accept it (which teaches them to accept an attacker's)"
                    : $"the certificate is not trusted ({facts.TrustWords}): senders that encrypt opportunistically (most) deliver anyway, but those that verify (MTA-STS in enforce mode, DANE without a matching TLSA record) do not",
                "use a certificate from a CA clients trust (Let's Encrypt is free) and give the whole chain: Tls.CertificatePath holds the server's certificate first, then the intermediates (certbot's fullchain.pem), Tls.KeyPath the key",
                chainData);
        }

        var expiryData = basics.DeepClone().AsObject();
        expiryData["not_before"] = When(facts.Leaf.NotBefore);
        expiryData["not_after"] = When(facts.Leaf.NotAfter);
        expiryData["days_left"] = (int)Math.Floor(facts.Left.TotalDays);
        var expiry = facts.ExpiryProblem();
        const string expiryTried = "the certificate's validity dates against this machine's clock";
        yield return expiry is { } e
            ? new DiagStep("cert_expiry" + p, $"certificate expiry on port {spec.Port}", e.Code == "cert_expiring" ? DiagStatus.Warn : DiagStatus.Fail, expiryTried, e.Saw, e.Code, e.Cause, e.Fix, expiryData)
            : new DiagStep("cert_expiry" + p, $"certificate expiry on port {spec.Port}", DiagStatus.Pass, expiryTried,
                $"valid until {When(facts.Leaf.NotAfter)}, {(int)Math.Floor(facts.Left.TotalDays)} days from now", Data: expiryData);

        var nameData = basics.DeepClone().AsObject();
        nameData["host"] = host;
        nameData["names"] = new JsonArray([.. facts.Names.Select(n => JsonValue.Create(n))]);
        nameData["matches"] = tls.NameMatches;
        var nameTried = $"the certificate's names against {host}";
        var namesSaw = $"the certificate is for {string.Join(", ", facts.Names)}";
        if (tls.NameMatches)
        {
            yield return new DiagStep("cert_name" + p, $"certificate name on port {spec.Port}", DiagStatus.Pass, nameTried, $"{namesSaw}: {host} matches", Data: nameData);
        }
        else if (IsIpLiteral(host, out _))
        {
            // Asked by address, nothing can match a name: clients and senders connect by name.
            yield return new DiagStep("cert_name" + p, $"certificate name on port {spec.Port}", DiagStatus.Info, nameTried,
                $"{namesSaw}; asked by address, so not compared (check the host by its name to compare)", Data: nameData);
        }
        else
        {
            // As the chain: clients refuse a wrong name, senders to an MX mostly deliver anyway.
            yield return new DiagStep("cert_name" + p, $"certificate name on port {spec.Port}", spec.ForClients ? DiagStatus.Fail : DiagStatus.Warn, nameTried,
                $"{namesSaw}: {host} is not among them", "cert_name_mismatch", facts.NameCause(spec), facts.NameFix(), nameData);
        }
    }

    /// <summary>
    /// A connection or reply that broke in the middle of a step: said with the probe's own words,
    /// and the likely cause for each way of breaking.
    /// </summary>
    internal static DiagStep Broken(string id, string title, string tried, SmtpProbeException e, JsonObject data, PortSpec spec, bool greeting)
    {
        data["failure"] = Word(e.Failure);
        var (code, cause, fix) = e.Failure switch
        {
            ProbeFailure.Timeout when greeting => ("banner_timeout",
                $"the connection was taken but nothing was said: an overloaded server, one that waits on purpose before greeting (to catch senders that talk first), a proxy in front of it that is stuck{(spec.ImplicitTls ? "" : $", or a port that wants TLS at once (like 465): then check it as {spec.Port}/submissions")}",
                "if it is your server, look at its load and its log for this connection; senders wait up to 5 minutes for a greeting (RFC 5321 §4.5.3.2.1), so a slow greeting is a problem only when it is this slow for them too"),
            ProbeFailure.Timeout => ("reply_timeout",
                "the server stopped answering in the middle of the dialogue: overloaded, stuck on a lookup (its DNS, an authentication backend), or a firewall that cuts the connection",
                "try again with a longer --timeout; if it is your server, look at its log for this connection"),
            ProbeFailure.Closed when greeting => ("banner_closed",
                "the connection was closed without a word: the server (or a firewall or proxy in front of it) drops this client, e.g. a connection limit, a block list, or a listener that expects a PROXY protocol header first",
                "if it is your server, look at its log for this connection (Postern drops clients that are not its proxies when Listeners[].ProxyProtocol is on) and at any proxy in front"),
            ProbeFailure.Closed => ("connection_closed",
                "the server closed the connection in the middle of the dialogue: it gave up on this client (too many errors, a limit) or crashed",
                "look at the server's log for this connection"),
            ProbeFailure.Reset => ("port_reset",
                "the connection was reset after it was made: the server or a firewall or proxy in front of it cut this client off",
                "if it is your server, look for a connection limit, an IP block list or a proxy in front of it; from another network, see whether the reset follows this address"),
            ProbeFailure.NotSmtp => ("not_smtp",
                $"what answers on port {spec.Port} is not an SMTP server (the words above show what it is: HTTP, SSH, a TLS-only service)",
                "check the port number; if it is your server, see what program listens there (ss -ltnp)"),
            ProbeFailure.Unreachable => ("port_unreachable",
                "the network between here and the host went away",
                "check this machine's network, then try again"),
            _ => ("connection_closed",
                "the connection broke in the middle of the dialogue",
                "try again; if it persists, look at the server's log for this connection"),
        };
        return new DiagStep(id, title, DiagStatus.Fail, tried, e.Message, code, cause, fix, data);
    }
}

/// <summary>The words `diag port` and `diag auth` share: ports and their roles, what EHLO said, what a certificate is.</summary>
public sealed partial class PortCheck
{
    /// <summary>What a port is for: it decides how the port is spoken to (STARTTLS or TLS at once) and how strict the check is.</summary>
    public enum PortRole
    {
        /// <summary>Mail from other servers (25): STARTTLS; senders encrypt opportunistically and accept any certificate.</summary>
        Mx,

        /// <summary>Mail from clients (587, RFC 6409): STARTTLS, then AUTH; clients refuse a certificate they cannot verify.</summary>
        Submission,

        /// <summary>Mail from clients over TLS from the first byte (465, RFC 8314): AUTH; clients refuse a certificate they cannot verify.</summary>
        Submissions,
    }

    /// <summary>A port to check and its role: <c>25</c>, <c>587</c>, <c>465</c>, or any port with a role, <c>2525/submission</c>.</summary>
    public sealed record PortSpec(int Port, PortRole Role)
    {
        /// <summary>TLS from the first byte (RFC 8314 §3.3) instead of STARTTLS.</summary>
        public bool ImplicitTls => Role == PortRole.Submissions;

        /// <summary>mx, submission, submissions: the words of <see cref="Postern.Server.Configuration.ListenerRole"/>.</summary>
        public string RoleWord => Role switch
        {
            PortRole.Mx => "mx",
            PortRole.Submission => "submission",
            _ => "submissions",
        };

        /// <summary>Where mail clients log in (587, 465): a certificate they cannot verify is refused.</summary>
        public bool ForClients => Role != PortRole.Mx;

        public override string ToString() => $"{Port} ({RoleWord})";

        /// <summary>
        /// <c>PORT</c> or <c>PORT/ROLE</c>. Without a role: 25 is mx, 465 submissions, any other port
        /// submission (587, and the 2525 that providers offer as a second submission port).
        /// </summary>
        /// <exception cref="UsageException">Not a port from 1 to 65535, or an unknown role.</exception>
        public static PortSpec Parse(string text, string option)
        {
            var slash = text.IndexOf('/');
            var number = slash < 0 ? text : text[..slash];
            if (!int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw new UsageException($"{option}: '{text}' is not a port; give port numbers from 1 to 65535, each optionally with /mx, /submission or /submissions (e.g. 25,587,465,2525/submission)");
            }
            PortRole role;
            if (slash < 0)
            {
                role = port switch
                {
                    25 => PortRole.Mx,
                    465 => PortRole.Submissions,
                    _ => PortRole.Submission,
                };
            }
            else
            {
                role = text[(slash + 1)..].ToLowerInvariant() switch
                {
                    "mx" or "smtp" => PortRole.Mx,
                    "submission" => PortRole.Submission,
                    "submissions" or "smtps" => PortRole.Submissions,
                    _ => throw new UsageException($"{option}: '{text}': the role after / is mx (STARTTLS, for servers), submission (STARTTLS, for clients) or submissions (TLS at once, for clients)"),
                };
            }
            return new PortSpec(port, role);
        }
    }

    /// <summary>What EHLO announced: its first line (the server's name) and each extension line as written.</summary>
    public sealed record EhloInfo(string Greeting, IReadOnlyList<string> Capabilities)
    {
        public bool StartTls => Capabilities.Any(c => c.Equals("STARTTLS", StringComparison.OrdinalIgnoreCase));

        /// <summary>The mechanisms of the AUTH line (RFC 4954 §3; also the old <c>AUTH=</c> form), upper-case; null when AUTH is not offered.</summary>
        public IReadOnlyList<string>? AuthMechanisms
        {
            get
            {
                var lines = Capabilities.Where(c => c.StartsWith("AUTH ", StringComparison.OrdinalIgnoreCase) || c.StartsWith("AUTH=", StringComparison.OrdinalIgnoreCase)).ToList();
                if (lines.Count == 0)
                {
                    return null;
                }
                return [.. lines.SelectMany(l => l[5..].Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(m => m.ToUpperInvariant()).Distinct()];
            }
        }
    }

    /// <summary>What a check says about a certificate: its names, trust and dates, in words and as data.</summary>
    internal sealed class CertificateFacts(TlsInfo tls, string host, DateTimeOffset now)
    {
        // Dates belong to the expiry step; revocation is not checked (CertificateRevocationCheckMode.NoCheck).
        private static readonly X509ChainStatusFlags[] NotTrustProblems =
            [X509ChainStatusFlags.NotTimeValid, X509ChainStatusFlags.NotTimeNested, X509ChainStatusFlags.RevocationStatusUnknown, X509ChainStatusFlags.OfflineRevocation];

        public X509Certificate2 Leaf => tls.Certificate;

        public TimeSpan Left => new DateTimeOffset(Leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero) - now;

        public IReadOnlyList<X509ChainStatusFlags> TrustProblems { get; } = [.. tls.ChainProblems.Where(p => !NotTrustProblems.Contains(p))];

        /// <summary>Trusted apart from the dates (which <see cref="ExpiryProblem"/> judges).</summary>
        public bool Trusted => TrustProblems.Count == 0 && (tls.ChainTrusted || tls.ChainProblems.Count > 0);

        /// <summary>The DNS names and IP addresses of the subjectAltName extension, else the common name.</summary>
        public IReadOnlyList<string> Names
        {
            get
            {
                var san = Leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
                List<string> names = san is null ? [] : [.. san.EnumerateDnsNames(), .. san.EnumerateIPAddresses().Select(a => a.ToString())];
                if (names.Count == 0 && Leaf.GetNameInfo(X509NameType.SimpleName, forIssuer: false) is { Length: > 0 } cn)
                {
                    names.Add(cn);
                }
                return names;
            }
        }

        public string TrustWords
        {
            get
            {
                var selfSigned = Leaf.SubjectName.RawData.AsSpan().SequenceEqual(Leaf.IssuerName.RawData) && tls.Chain.Count <= 1;
                var words = TrustProblems.Select(p => p switch
                {
                    X509ChainStatusFlags.UntrustedRoot when selfSigned => "self-signed",
                    X509ChainStatusFlags.UntrustedRoot => "it leads to a root this machine does not trust (a private CA)",
                    X509ChainStatusFlags.PartialChain => "the chain is incomplete: the server does not send the intermediate certificate(s), or the issuer is unknown here",
                    X509ChainStatusFlags.NotSignatureValid => "a signature in the chain does not verify",
                    X509ChainStatusFlags.Revoked => "revoked by its CA",
                    X509ChainStatusFlags.NotValidForUsage => "not made for TLS servers (its key usage)",
                    _ => p.ToString(),
                }).Distinct().ToList();
                return words.Count > 0 ? string.Join("; ", words) : "the chain does not verify";
            }
        }

        public JsonArray ChainJson() => new([.. tls.Chain.Select(c => (JsonNode)new JsonObject
        {
            ["subject"] = c.Subject,
            ["issuer"] = c.Issuer,
            ["not_before"] = PortCheck.When(c.NotBefore),
            ["not_after"] = PortCheck.When(c.NotAfter),
            ["sha256"] = c.GetCertHashString(HashAlgorithmName.SHA256),
        })]);

        /// <summary>Expired, not yet valid, or expiring within <see cref="PortCheck.ExpirySoon"/>; null when none.</summary>
        public (string Code, string Saw, string Cause, string Fix)? ExpiryProblem()
        {
            var notAfter = PortCheck.When(Leaf.NotAfter);
            const string renew = "renew it (certbot renew, or your ACME client: its timer or cron job may have stopped) and point Tls.CertificatePath and Tls.KeyPath at the new files; Postern takes renewed files without a restart";
            if (Left < TimeSpan.Zero)
            {
                var ago = (int)Math.Floor(-Left.TotalDays);
                return ("cert_expired", $"expired on {notAfter}, {ago} {(ago == 1 ? "day" : "days")} ago",
                    "the certificate has expired: mail clients refuse it, and senders that verify (MTA-STS, DANE) stop delivering", renew);
            }
            if (new DateTimeOffset(Leaf.NotBefore.ToUniversalTime(), TimeSpan.Zero) > now)
            {
                return ("cert_not_yet_valid", $"valid only from {PortCheck.When(Leaf.NotBefore)}",
                    "the certificate is not valid yet: either this machine's clock is behind, or the certificate was made with a start date in the future",
                    "check the clocks (timedatectl; NTP) here and on the server; if they are right, issue the certificate again");
            }
            if (Left < PortCheck.ExpirySoon)
            {
                var days = (int)Math.Floor(Left.TotalDays);
                return ("cert_expiring", $"expires on {notAfter}, in {days} {(days == 1 ? "day" : "days")}",
                    "the certificate expires within two weeks: ACME clients renew at 30 days left, so renewal has been failing for a while",
                    "run the renewal by hand and read its error (certbot renew --dry-run); then " + renew);
            }
            return null;
        }

        public string NameCause(PortSpec spec) => PortCheck.IsIpLiteral(host, out _)
            ? $"the certificate names {string.Join(", ", Names)}, not the address {host}: clients and senders connect by name and check that name, so this address was not the name to check"
            : spec.ForClients
                ? $"the certificate is for {string.Join(", ", Names)}, not {host}: mail clients that connect to {host} refuse it"
                : $"the certificate is for {string.Join(", ", Names)}, not {host}: senders that verify (MTA-STS, DANE) refuse to deliver to {host}";

        public string NameFix() => PortCheck.IsIpLiteral(host, out _)
            ? $"check the name clients and senders use instead of {host} (the MX host, the server name set in mail clients); if that fails too, get a certificate that names it (Tls.CertificatePath)"
            : $"get a certificate that names {host} (as a subjectAltName) and give it in Tls.CertificatePath; or, if clients and senders use another name (the MX host, the server name set in mail clients), check that name instead. Postern's Hostname should be one of the certificate's names";
    }
}
