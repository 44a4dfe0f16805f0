using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Postern.Invocation;
using Postern.MailAuth.Dns;

namespace Postern.Diagnostics;

/// <summary>
/// `postern diag relay HOST [--port 25] [--from-domain D]`: is the server an open relay? It tries
/// the classic open-relay address forms, one transaction each (RSET between): external to external,
/// the null sender, the percent hack, the bang path, a quoted local part, a source route (RFC 5321
/// §4.1.1.3 says to ignore them, some servers follow them), address literals, and a sender that
/// spoofs the server's own domain. The verdict is the answer to RCPT: an accepted recipient is
/// enough to relay spam, so no DATA is ever sent and nothing is delivered.
/// </summary>
public sealed class RelayCheck : IDiagVerb
{
    // Never real mail: example.org and example.net (RFC 2606), 203.0.113.0/24 (RFC 5737).
    private const string Outside = "example.net";
    private const string Sender = "relaytest@example.org";
    private const string LocalPart = "relaytest";
    private const string TestNet = "203.0.113.1";

    public string Name => "relay";

    public string Usage => "diag relay HOST [--port 25] [--from-domain DOMAIN]";

    public string Summary => "does the server relay for strangers (the classic open-relay tricks)";

    public IReadOnlyList<string> Options => ["--port", "--from-domain"];

    public string Target(Arguments args)
    {
        if (args.Positional.Count != 1 || args.Positional[0].Length == 0)
        {
            throw new UsageException($"{Usage}: one host name or address");
        }
        DeliverCheck.Port(args, 25);
        if (args.Value("--from-domain") is { } d && !Postern.Protocol.Addresses.AddressParser.IsDomain(d, false))
        {
            throw new UsageException($"--from-domain {d}: a domain name");
        }
        return args.Positional[0];
    }

    /// <summary>One open-relay trick: its step id, what it tries, the sender and the recipient.</summary>
    private sealed record Form(string Id, string Title, string From, string To);

    private static List<Form> Forms(string domain, IPAddress host) =>
    [
        new("relay.plain", "outside to outside", Sender, $"{LocalPart}@{Outside}"),
        new("relay.null_sender", "null sender to outside", "", $"{LocalPart}@{Outside}"),
        new("relay.percent", "percent hack", Sender, $"{LocalPart}%{Outside}@{domain}"),
        new("relay.bang", "bang path", Sender, $"{Outside}!{LocalPart}@{domain}"),
        new("relay.quoted", "quoted local part", Sender, $"\"{LocalPart}@{Outside}\"@{domain}"),
        new("relay.source_route", "source route", Sender, $"@{domain}:{LocalPart}@{Outside}"),
        new("relay.literal", "address literal", Sender, $"{LocalPart}@[{TestNet}]"),
        new("relay.quoted_literal", "quoted local part at the server's address", Sender, $"\"{LocalPart}@{Outside}\"@[{(host.AddressFamily == AddressFamily.InterNetworkV6 ? "IPv6:" : "")}{host}]"),
        new("relay.own_sender", "the server's own domain as sender, to outside", $"{LocalPart}@{domain}", $"{LocalPart}@{Outside}"),
    ];

    public async Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken)
    {
        var host = args.Positional[0];
        var port = DeliverCheck.Port(args, 25);
        var addresses = await DeliverCheck.ResolveHostAsync(ctx, host, "connect", cancellationToken);
        if (addresses is null)
        {
            return;
        }
        var session = new Session(ctx, host, port);
        try
        {
            if (!await session.OpenFirstAsync(addresses, cancellationToken))
            {
                return;
            }
            var domain = args.Value("--from-domain") ?? HostDomain(host, session.GreetingName) ?? $"[{session.Address}]";
            var accepted = new List<string>();
            var untested = new List<string>();
            var forms = Forms(domain, session.Address!);
            foreach (var form in forms)
            {
                var step = await session.TryAsync(form, cancellationToken);
                ctx.Add(step);
                if (step.Code == "open_relay")
                {
                    accepted.Add(form.Id);
                }
                else if (step.Status != DiagStatus.Pass)
                {
                    untested.Add(form.Id);
                }
            }
            ctx.Add(Verdict(host, session, forms.Count, accepted, untested));
        }
        finally
        {
            await session.DisposeAsync();
        }
    }

    private static DiagStep Verdict(string host, Session session, int forms, List<string> accepted, List<string> untested)
    {
        const string tried = "the forms above, one transaction each; RCPT acceptance is the verdict (no DATA is ever sent)";
        var data = new JsonObject
        {
            ["open_relay"] = accepted.Count > 0,
            ["accepted"] = new JsonArray([.. accepted.Select(a => JsonValue.Create(a))]),
            ["untested"] = new JsonArray([.. untested.Select(a => JsonValue.Create(a))]),
            ["from"] = session.Local?.Address.ToString(),
        };
        if (accepted.Count > 0)
        {
            return new DiagStep("relay.verdict", "open relay", DiagStatus.Fail, tried,
                $"{host} accepted a recipient outside its domains from {session.Local?.Address} in {accepted.Count} of {forms} forms: {string.Join(", ", accepted)}",
                "open_relay", OpenRelayCause(session), OpenRelayFix, data);
        }
        if (untested.Count > 0)
        {
            return new DiagStep("relay.verdict", "relay not fully tested", DiagStatus.Warn, tried,
                $"no form was accepted, but {untested.Count} could not be judged: {string.Join(", ", untested)}", "relay_untested",
                "the server deferred (4xx) or dropped some forms, so whether it relays them is unknown",
                "run the check again in a few minutes (greylisting accepts a retry), with a longer --timeout if the server is slow to answer", data);
        }
        return new DiagStep("relay.verdict", "not an open relay", DiagStatus.Pass, tried,
            $"{host} refused every form from {session.Local?.Address}: it does not relay for strangers", Data: data);
    }

    private static string OpenRelayCause(Session session) =>
        $"the server takes mail for outside domains from anyone who connects from {session.Local?.Address}: spammers find such servers within hours, and its address ends on blocklists. " +
        "(If that address is in the server's trusted networks, this speaks only for it: run the check from outside.)";

    private const string OpenRelayFix =
        "allow relaying only to authenticated users and your own networks. Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, " +
        "with mynetworks limited to your own addresses (never 0.0.0.0/0). Exim: relay_from_hosts. Postern never relays for strangers: only AUTH users and Relay.TrustedNetworks may, so keep that list short";

    /// <summary>The domain of a host name (mx.example.com → example.com), else of the name the server gave in its greeting.</summary>
    internal static string? HostDomain(string host, string? greetingName)
    {
        foreach (var name in new[] { host, greetingName })
        {
            if (name is null || PortCheck.IsIpLiteral(name, out _))
            {
                continue;
            }
            var n = name.TrimEnd('.').ToLowerInvariant();
            var dot = n.IndexOf('.');
            if (dot < 0)
            {
                continue;
            }
            // A name of two labels is the domain itself.
            var rest = n[(dot + 1)..];
            return rest.Contains('.') ? rest : n;
        }
        return null;
    }

    /// <summary>
    /// The connection the forms go over: opened with banner, EHLO and STARTTLS when offered (anyone
    /// can use it, so a server that relays only over TLS is still an open relay), and opened again
    /// when the server drops it (many close after a number of refused commands).
    /// </summary>
    private sealed class Session(DiagContext ctx, string host, int port) : IAsyncDisposable
    {
        private SmtpProbe? _probe;
        private bool _useTls = true;

        public IPAddress? Address { get; private set; }

        public IPEndPoint? Local { get; private set; }

        public string? GreetingName { get; private set; }

        private string EhloName => DeliverCheck.EhloName(ctx);

        /// <summary>The first connection, with a step for the connection, the banner and EHLO.</summary>
        public async Task<bool> OpenFirstAsync(IReadOnlyList<IPAddress> addresses, CancellationToken cancellationToken)
        {
            var failures = new List<string?>();
            foreach (var address in addresses)
            {
                var where = SmtpProbe.Describe(address, port);
                try
                {
                    _probe = await ctx.WaitAsync($"connecting to {where}", SmtpProbe.ConnectAsync(address, port, ctx.Timeout, null, cancellationToken));
                }
                catch (SmtpProbeException e)
                {
                    var step = DeliverCheck.ConnectFailed($"connect.{address}", address, port, host, e, last: address.Equals(addresses[^1]), relay: true);
                    failures.Add(step.Code);
                    ctx.Add(step);
                    continue;
                }
                Address = address;
                Local = _probe.Local;
                ctx.Add(new DiagStep($"connect.{address}", $"connect to {where}", DiagStatus.Pass, $"TCP to {where} ({host})",
                    $"connected in {_probe.ConnectTime.TotalMilliseconds:0} ms from {_probe.Local.Address}",
                    Data: new JsonObject { ["address"] = address.ToString(), ["port"] = port, ["from"] = _probe.Local.Address.ToString() }));
                try
                {
                    var banner = await ctx.WaitAsync("waiting for the greeting", _probe.ReadReplyAsync(cancellationToken));
                    GreetingName = banner.Lines.FirstOrDefault()?.Split(' ', 2)[0];
                    if (banner.Code != 220)
                    {
                        var e = ReplyExplainer.Explain(banner);
                        ctx.Add(new DiagStep("banner", "greeting", DiagStatus.Warn, "reading the greeting", $"refused at connect: {banner}", "relay_untested",
                            $"{host} turned this connection away before any command ({e.Cause}), so relaying could not be tried", $"run the check from another address; {e.Fix}",
                            new JsonObject { ["reply"] = banner.ToString(), ["diagnosis"] = e.Code }));
                        return false;
                    }
                    ctx.Add(new DiagStep("banner", "greeting", DiagStatus.Pass, "reading the greeting", banner.ToString(), Data: new JsonObject { ["reply"] = banner.ToString() }));
                    var ehlo = await HelloAsync(cancellationToken);
                    if (!ehlo.IsPositive)
                    {
                        var e = ReplyExplainer.Explain(ehlo);
                        ctx.Add(new DiagStep("ehlo", "EHLO", DiagStatus.Warn, $"EHLO {EhloName}, then HELO {EhloName}", $"refused: {ehlo}", "relay_untested",
                            $"{host} refused EHLO and HELO ({e.Cause}), so relaying could not be tried", e.Fix, new JsonObject { ["reply"] = ehlo.ToString(), ["diagnosis"] = e.Code }));
                        return false;
                    }
                    ctx.Add(new DiagStep("ehlo", "EHLO", DiagStatus.Pass, $"EHLO {EhloName}{(_probe.Tls is null ? "" : $", then STARTTLS and EHLO again")}",
                        $"{ehlo.Lines.FirstOrDefault()}{(_probe.Tls is null ? ", in clear text" : $"; over {_probe.Tls.ProtocolName}")}",
                        Data: new JsonObject { ["capabilities"] = new JsonArray([.. ehlo.Lines.Skip(1).Select(l => JsonValue.Create(l))]), ["tls"] = _probe.Tls?.ProtocolName }));
                    return true;
                }
                catch (SmtpProbeException e)
                {
                    ctx.Add(new DiagStep("banner", "greeting and EHLO", DiagStatus.Warn, "reading the greeting, EHLO", e.Message, "relay_untested",
                        $"{host} did not finish the greeting and EHLO, so relaying could not be tried", "check the server with `postern diag port HOST`, then run this check again",
                        new JsonObject { ["failure"] = e.Failure.Word() }));
                    return false;
                }
            }
            ctx.Add(DeliverCheck.NoneAnswered(string.Join(", ", addresses.Select(a => SmtpProbe.Describe(a, port))), port, failures));
            return false;
        }

        /// <summary>EHLO, STARTTLS when offered (once it worked), EHLO again; returns the last EHLO reply.</summary>
        private async Task<SmtpReply> HelloAsync(CancellationToken cancellationToken)
        {
            var ehlo = await ctx.WaitAsync("EHLO", _probe!.CommandAsync($"EHLO {EhloName}", cancellationToken));
            if (ehlo.Code != 250)
            {
                ehlo = await _probe.CommandAsync($"HELO {EhloName}", cancellationToken);
                return ehlo;
            }
            if (_useTls && ehlo.Lines.Skip(1).Any(l => l.Equals("STARTTLS", StringComparison.OrdinalIgnoreCase)))
            {
                var go = await _probe.CommandAsync("STARTTLS", cancellationToken);
                if (go.Code == 220)
                {
                    try
                    {
                        await ctx.WaitAsync("TLS handshake", _probe.HandshakeAsync(host, cancellationToken));
                    }
                    catch (SmtpProbeException)
                    {
                        // Go on in clear text, on a new connection: the forms are what is tested.
                        _useTls = false;
                        return await ReopenAsync(cancellationToken);
                    }
                    ehlo = await _probe.CommandAsync($"EHLO {EhloName}", cancellationToken);
                }
            }
            return ehlo;
        }

        /// <summary>A new connection to the same address: greeting, EHLO (and STARTTLS unless it failed before).</summary>
        private async Task<SmtpReply> ReopenAsync(CancellationToken cancellationToken)
        {
            if (_probe is not null)
            {
                // Forgotten before the new connection is tried: if that fails, no later form may use the closed one.
                var old = _probe;
                _probe = null;
                await old.DisposeAsync();
            }
            _probe = await SmtpProbe.ConnectAsync(Address!, port, ctx.Timeout, null, cancellationToken);
            var banner = await _probe.ReadReplyAsync(cancellationToken);
            if (banner.Code != 220)
            {
                throw new SmtpProbeException(ProbeFailure.Closed, $"refused at connect: {banner}");
            }
            return await HelloAsync(cancellationToken);
        }

        /// <summary>One form: RSET, MAIL, RCPT; a dropped connection is opened again and the form tried once more.</summary>
        public async Task<DiagStep> TryAsync(Form form, CancellationToken cancellationToken)
        {
            var tried = $"MAIL FROM:<{form.From}> then RCPT TO:<{form.To}>";
            var data = new JsonObject { ["mail_from"] = form.From, ["rcpt_to"] = form.To };
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    return await ctx.WaitAsync($"trying {form.Title}", TryOnceAsync(form, tried, data, cancellationToken));
                }
                catch (SmtpProbeException e) when (attempt == 0)
                {
                    try
                    {
                        await ReopenAsync(cancellationToken);
                    }
                    catch (SmtpProbeException again)
                    {
                        return Untested(form, tried, data, $"the connection broke ({e.Message}) and could not be opened again: {again.Message}");
                    }
                }
                catch (SmtpProbeException e)
                {
                    return Untested(form, tried, data, $"the connection broke: {e.Message}");
                }
            }
        }

        private async Task<DiagStep> TryOnceAsync(Form form, string tried, JsonObject data, CancellationToken cancellationToken)
        {
            if (_probe is null)
            {
                throw new SmtpProbeException(ProbeFailure.Closed, "no connection (it could not be opened again)");
            }
            var rset = await _probe.CommandAsync("RSET", cancellationToken);
            if (rset.Code == 421)
            {
                throw new SmtpProbeException(ProbeFailure.Closed, $"the server closes the connection: {rset}");
            }
            var mail = await _probe.CommandAsync($"MAIL FROM:<{form.From}>", cancellationToken);
            data["mail_reply"] = mail.ToString();
            if (mail.Code == 421)
            {
                throw new SmtpProbeException(ProbeFailure.Closed, $"the server closes the connection: {mail}");
            }
            if (!mail.IsPositive)
            {
                if (mail.IsTemporary)
                {
                    return Untested(form, tried, data, $"the sender was deferred: {mail}");
                }
                return new DiagStep(form.Id, form.Title, DiagStatus.Pass, tried, $"refused at MAIL FROM: {mail}", Data: data);
            }
            var rcpt = await _probe.CommandAsync($"RCPT TO:<{form.To}>", cancellationToken);
            data["rcpt_reply"] = rcpt.ToString();
            data["accepted"] = rcpt.IsPositive;
            if (rcpt.Code == 421)
            {
                throw new SmtpProbeException(ProbeFailure.Closed, $"the server closes the connection: {rcpt}");
            }
            if (rcpt.IsPositive)
            {
                return new DiagStep(form.Id, form.Title, DiagStatus.Fail, tried, $"ACCEPTED: {rcpt}", "open_relay",
                    $"{host} accepts a recipient outside its own domains ({form.Title}) from {Local?.Address}: it would relay the message",
                    "close the relay: the verdict (relay.verdict) names the settings to change", data);
            }
            if (rcpt.IsTemporary)
            {
                return Untested(form, tried, data, $"deferred: {rcpt}");
            }
            return new DiagStep(form.Id, form.Title, DiagStatus.Pass, tried, $"refused: {rcpt}", Data: data);
        }

        private DiagStep Untested(Form form, string tried, JsonObject data, string saw) =>
            new(form.Id, form.Title, DiagStatus.Warn, tried, saw, "relay_untested",
                "the server neither accepted nor refused this recipient for good, so whether it relays it is unknown (greylisting defers the first try)",
                "run the check again in a few minutes; greylisting accepts a retry, and then the answer counts", data);

        public async ValueTask DisposeAsync()
        {
            if (_probe is not null)
            {
                await _probe.DisposeAsync();
            }
        }
    }
}
