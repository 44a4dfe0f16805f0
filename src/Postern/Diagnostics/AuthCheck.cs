using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Postern.Invocation;

namespace Postern.Diagnostics;

/// <summary>
/// `postern diag auth HOST --user U --password-stdin [--port 587]`: can this account log in, and if
/// not, what failed: the connection, TLS (the handshake, or a certificate clients would refuse), the
/// server offering no AUTH or no mechanism this check speaks, the credentials, a lockout after too
/// many failures, or a temporary server error. It logs in the way mail clients do (STARTTLS, or TLS at
/// once on 465; AUTH PLAIN, else LOGIN), never without TLS, sends no mail, and says QUIT. The
/// password is read from the first line of standard input and appears nowhere in what it prints.
/// </summary>
public sealed partial class AuthCheck : IDiagVerb
{
    public string Name => "auth";

    public string Usage => "diag auth HOST --user U --password-stdin [--port 587] [--insecure]";

    public string Summary => "can the account log in; else TLS, mechanism, credentials or lockout";

    public IReadOnlyList<string> Options => ["--user", "--password-stdin", "--port", "--insecure"];

    public string Target(Arguments args)
    {
        if (args.Positional.Count != 1)
        {
            throw new UsageException($"{Usage}: one host name or IP address (the port goes in --port; a port may carry a role: 2465/submissions for TLS at once)");
        }
        if (string.IsNullOrWhiteSpace(args.Value("--user")))
        {
            throw new UsageException($"{Usage}: --user names the account (often the whole address, alice@example.com)");
        }
        if (!args.Has("--password-stdin"))
        {
            throw new UsageException("--password-stdin is required: the password is read from the first line of standard input, never given on the command line");
        }
        Port(args);
        return PortCheck.Host(args.Positional[0], Usage);
    }

    public async Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken)
    {
        var host = PortCheck.Host(args.Positional[0], Usage);
        var spec = Port(args);
        var user = args.Value("--user")!.Trim();
        var password = ctx.Stdin.ReadLine();
        if (string.IsNullOrEmpty(password))
        {
            throw new UsageException("--password-stdin: no password on standard input (its first line is the password)");
        }
        var secrets = new Secrets(user, password);
        void Add(DiagStep step) => ctx.Add(secrets.Hide(step));

        var (addresses, resolved) = await PortCheck.ResolveAsync(ctx, host, cancellationToken).ConfigureAwait(false);
        Add(resolved);
        if (addresses.Count == 0)
        {
            return;
        }
        // As a client does: the addresses in turn until one takes the connection.
        SmtpProbe? probe = null;
        DiagStep? connected = null;
        var failed = new List<string>();
        foreach (var address in addresses)
        {
            (probe, _, connected) = await ctx.WaitAsync($"connecting to {SmtpProbe.Describe(address, spec.Port)}", PortCheck.ConnectAsync(ctx, address, spec, "tcp", cancellationToken)).ConfigureAwait(false);
            if (probe is not null)
            {
                break;
            }
            failed.Add(connected.Saw);
        }
        // Every address tried is named: "refused" on the first, then the one that answered.
        connected = connected! with { Saw = string.Join("; then ", probe is null ? failed : [.. failed, connected.Saw]) };
        Add(connected);
        if (probe is null)
        {
            return;
        }
        await using (probe.ConfigureAwait(false))
        {
            var ehlo = await TlsSessionAsync(ctx, probe, host, spec, args.Has("--insecure"), Add, cancellationToken).ConfigureAwait(false);
            if (ehlo is not null)
            {
                Add(await LogInAsync(ctx, probe, ehlo, spec, user, password, cancellationToken).ConfigureAwait(false));
            }
        }
    }

    /// <summary>Greeting, EHLO and TLS in the order the port wants them; the EHLO reply over TLS, or null when a step failed.</summary>
    private static async Task<PortCheck.EhloInfo?> TlsSessionAsync(DiagContext ctx, SmtpProbe probe, string host, PortCheck.PortSpec spec, bool insecure, Action<DiagStep> add, CancellationToken cancellationToken)
    {
        // TLS up, and over a certificate a client would accept (or --insecure): else no password goes.
        bool Secure(TlsInfo? tls, DiagStep tlsStep)
        {
            add(tlsStep);
            if (tls is null)
            {
                return false;
            }
            var certificate = Certificate(ctx, tls, host, spec, insecure);
            add(certificate);
            return certificate.Status != DiagStatus.Fail;
        }

        if (spec.ImplicitTls)
        {
            var (tls, tlsStep) = await ctx.WaitAsync("TLS handshake", PortCheck.ImplicitTlsAsync(probe, host, spec, "tls", cancellationToken)).ConfigureAwait(false);
            if (!Secure(tls, tlsStep))
            {
                return null;
            }
            var (greeted, banner) = await ctx.WaitAsync("waiting for the greeting", PortCheck.GreetingAsync(probe, spec, "banner", cancellationToken)).ConfigureAwait(false);
            add(banner);
            if (!greeted)
            {
                return null;
            }
            var (ehlo, ehloStep) = await ctx.WaitAsync("EHLO", PortCheck.EhloAsync(ctx, probe, spec, "ehlo", afterTls: true, cancellationToken, judgeAuth: false)).ConfigureAwait(false);
            add(ehloStep);
            return ehlo;
        }
        else
        {
            var (greeted, banner) = await ctx.WaitAsync("waiting for the greeting", PortCheck.GreetingAsync(probe, spec, "banner", cancellationToken)).ConfigureAwait(false);
            add(banner);
            if (!greeted)
            {
                return null;
            }
            var (ehlo, ehloStep) = await ctx.WaitAsync("EHLO", PortCheck.EhloAsync(ctx, probe, spec, "ehlo", afterTls: false, cancellationToken, judgeAuth: false)).ConfigureAwait(false);
            add(ehloStep);
            if (ehlo is null)
            {
                return null;
            }
            var (tls, tlsStep) = await ctx.WaitAsync("STARTTLS", PortCheck.StartTlsAsync(probe, host, spec, ehlo, "tls", required: true, cancellationToken)).ConfigureAwait(false);
            if (!Secure(tls, tlsStep))
            {
                return null;
            }
            // RFC 3207 §4.2: what was said before TLS is forgotten; EHLO again to see AUTH.
            var (again, againStep) = await ctx.WaitAsync("EHLO over TLS", PortCheck.EhloAsync(ctx, probe, spec, "ehlo_tls", afterTls: true, cancellationToken, judgeAuth: false)).ConfigureAwait(false);
            add(againStep);
            return again;
        }
    }

    /// <summary>
    /// The certificate in one step. An expired, wrong-name or untrusted one fails and the password
    /// is not sent: a man in the middle would present just such a certificate, and mail clients
    /// refuse it. With --insecure (a server whose certificate you know) it is a warning and the
    /// login is tried; `diag port` judges the certificate in full.
    /// </summary>
    private static DiagStep Certificate(DiagContext ctx, TlsInfo tls, string host, PortCheck.PortSpec spec, bool insecure)
    {
        var facts = new PortCheck.CertificateFacts(tls, host, ctx.Time.GetUtcNow());
        var data = new JsonObject
        {
            ["subject"] = facts.Leaf.Subject,
            ["issuer"] = facts.Leaf.Issuer,
            ["not_after"] = PortCheck.When(facts.Leaf.NotAfter),
            ["names"] = new JsonArray([.. facts.Names.Select(n => JsonValue.Create(n))]),
            ["trusted"] = facts.Trusted,
            ["name_matches"] = tls.NameMatches,
        };
        const string title = "certificate";
        var tried = $"the certificate's chain, dates and names, for {host}";
        var saw = $"{facts.Leaf.Subject}, issued by {facts.Leaf.Issuer}, valid until {PortCheck.When(facts.Leaf.NotAfter)}";
        var status = insecure ? DiagStatus.Warn : DiagStatus.Fail;
        var also = insecure
            ? $"; with --insecure the login is tried over it all the same (`postern diag port {host} --ports {spec.Port}/{spec.RoleWord}` judges the certificate in full)"
            : "; so the password was not sent (a man in the middle would present such a certificate): to try the login over it anyway, on a server whose certificate you know, add --insecure";
        if (facts.ExpiryProblem() is { Code: not "cert_expiring" } expired)
        {
            return new DiagStep("cert", title, status, tried, $"{saw}: {expired.Saw}", expired.Code, expired.Cause + also, expired.Fix, data);
        }
        if (!tls.NameMatches)
        {
            return new DiagStep("cert", title, status, tried, $"{saw}: for {string.Join(", ", facts.Names)}, not {host}", "cert_name_mismatch", facts.NameCause(spec) + also, facts.NameFix(), data);
        }
        if (!facts.Trusted)
        {
            return new DiagStep("cert", title, status, tried, $"{saw}: not trusted: {facts.TrustWords}", "cert_untrusted",
                $"the certificate is not trusted ({facts.TrustWords}): mail clients refuse it, or ask their users to accept it{also}",
                "use a certificate from a CA clients trust (Let's Encrypt is free) with its whole chain in Tls.CertificatePath (certbot's fullchain.pem), the key in Tls.KeyPath", data);
        }
        if (facts.ExpiryProblem() is { } soon)
        {
            return new DiagStep("cert", title, DiagStatus.Warn, tried, $"{saw}: {soon.Saw}", soon.Code, soon.Cause, soon.Fix, data);
        }
        return new DiagStep("cert", title, DiagStatus.Pass, tried, $"{saw}; trusted, and for {host}", Data: data);
    }

    /// <summary>AUTH PLAIN (RFC 4616, with the initial response of RFC 4954 §4), else LOGIN; the reply judged.</summary>
    private static async Task<DiagStep> LogInAsync(DiagContext ctx, SmtpProbe probe, PortCheck.EhloInfo ehlo, PortCheck.PortSpec spec, string user, string password, CancellationToken cancellationToken)
    {
        const string id = "auth";
        var title = $"log in as {user}";
        var data = new JsonObject { ["user"] = user };
        if (ehlo.AuthMechanisms is not { } mechanisms)
        {
            return new DiagStep(id, title, DiagStatus.Fail, "looking for AUTH in the EHLO reply over TLS", "AUTH is not offered, even over TLS", "auth_not_offered",
                spec.Role == PortCheck.PortRole.Mx
                    ? $"port {spec.Port} takes mail from other servers and offers no login: clients log in on the submission ports"
                    : $"the server offers no login on port {spec.Port}: AUTH is not turned on for this port, or its authentication backend is not set up",
                spec.Role == PortCheck.PortRole.Mx
                    ? "try the submission port: --port 587 (or 465)"
                    : "turn AUTH on for this port (Postfix: smtpd_sasl_auth_enable = yes with a SASL backend such as Dovecot; Postern offers AUTH PLAIN LOGIN over TLS on every listener), or use the port that has it", data);
        }
        data["mechanisms"] = new JsonArray([.. mechanisms.Select(m => JsonValue.Create(m))]);
        var mechanism = mechanisms.Contains("PLAIN") ? "PLAIN" : mechanisms.Contains("LOGIN") ? "LOGIN" : null;
        if (mechanism is null)
        {
            return new DiagStep(id, title, DiagStatus.Fail, "choosing PLAIN or LOGIN from the AUTH line", $"offers only {string.Join(" ", mechanisms)}", "mechanism_not_offered",
                "the server offers none of the mechanisms that nearly every mail client uses over TLS (PLAIN, LOGIN); this check speaks only those",
                "offer PLAIN and LOGIN over TLS (Dovecot: auth_mechanisms = plain login; Postern offers both), or test with a client that speaks what the server offers", data);
        }
        data["mechanism"] = mechanism;
        var tried = $"AUTH {mechanism} as {user} (the password hidden)";
        SmtpReply reply;
        try
        {
            reply = await ctx.WaitAsync($"AUTH {mechanism}", ExchangeAsync(probe, mechanism, user, password, cancellationToken)).ConfigureAwait(false);
        }
        catch (SmtpProbeException e)
        {
            return PortCheck.Broken(id, title, tried, e, data, spec, greeting: false);
        }
        data["reply_code"] = reply.Code;
        data["reply"] = SmtpProbe.Printable(reply.ToString());
        var saw = SmtpProbe.Printable(reply.ToString());
        if (reply.Code == 235)
        {
            return new DiagStep(id, title, DiagStatus.Pass, tried, $"{saw}: the account works (logged in with {mechanism})", Data: data);
        }
        if (reply.Code == 535)
        {
            return new DiagStep(id, title, DiagStatus.Fail, tried, saw, "credentials_refused",
                "the server checked the user name and password and refused them (535 5.7.8): a wrong password, a user name in the wrong form (many servers want the whole address, alice@example.com, not alice), or no such account",
                "check the user name's form and the password; on Postern, set a new one with `postern user passwd ADDRESS` (accounts live in Accounts.PasswdFile). Repeated failures lock the address out: fix the password before trying many times", data);
        }
        if (IsLockout(reply))
        {
            return new DiagStep(id, title, DiagStatus.Fail, tried, saw, "auth_locked_out",
                "the server locked out this address (or the account) after too many failed logins: it refuses every login from here for a while, even with the right password",
                "wait for the ban to end (Postern: Accounts.LockoutDuration, 15 minutes at first, doubling on repeats up to Accounts.MaxLockoutDuration), or lift it on the server (`postern bans list`, `postern bans release ip:ADDRESS`); then find the client that keeps trying an old password (a phone, a second mail program) and correct it", data);
        }
        if (reply.Code is 504 || reply.Enhanced is "5.5.4" or "5.7.4")
        {
            return new DiagStep(id, title, DiagStatus.Fail, tried, saw, "mechanism_not_offered",
                $"the server announced {mechanism} but refused it: its AUTH line and what it accepts differ (a misconfigured SASL backend)",
                "make the announced mechanisms those the backend accepts (Postfix with Dovecot: auth_mechanisms = plain login)", data);
        }
        if (reply.IsTemporary)
        {
            return new DiagStep(id, title, DiagStatus.Fail, tried, saw, "auth_temporary",
                "the server could not check the password now (a temporary error): its authentication backend (Dovecot, LDAP, a database) is down, slow or unreachable from it",
                "try again later; if it is your server, look at its log and at the authentication backend (Postern: Accounts.PasswdFile is readable; Postfix: the Dovecot auth socket)", data);
        }
        return new DiagStep(id, title, DiagStatus.Fail, tried, saw, "auth_refused",
            "the server refused the login for a reason of its own, which its words above give (e.g. an app password required, an account without the right to send)",
            "act on the server's words; if it is your server, look at its log for this login", data);
    }

    /// <summary>The AUTH dialogue; the reply that ends it (235, or a refusal at any stage).</summary>
    private static async Task<SmtpReply> ExchangeAsync(SmtpProbe probe, string mechanism, string user, string password, CancellationToken cancellationToken)
    {
        if (mechanism == "PLAIN")
        {
            // RFC 4616 §2: [authzid] NUL authcid NUL passwd; no authzid (acting as oneself).
            var response = Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{user}\0{password}"));
            var reply = await probe.CommandAsync($"AUTH PLAIN {response}", cancellationToken).ConfigureAwait(false);
            // A server that ignores the initial response asks again with an empty challenge.
            return reply.Code == 334 ? await probe.CommandAsync(response, cancellationToken).ConfigureAwait(false) : reply;
        }
        var first = await probe.CommandAsync("AUTH LOGIN", cancellationToken).ConfigureAwait(false);
        if (first.Code != 334)
        {
            return first;
        }
        var second = await probe.CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(user)), cancellationToken).ConfigureAwait(false);
        if (second.Code != 334)
        {
            return second;
        }
        return await probe.CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(password)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A temporary refusal that says the client is locked out: Postern's 454 4.7.0 "Too many failed
    /// authentications from your address", Gmail's 454 4.7.0 "Too many login attempts", Postfix's
    /// 450 4.7.1 "too many AUTH commands" (smtpd_client_auth_rate_limit). A 454 4.7.0 without such
    /// words ("Temporary authentication failure": Postfix when Dovecot is down) is not one.
    /// </summary>
    internal static bool IsLockout(SmtpReply reply) =>
        reply.IsTemporary && (reply.Enhanced is null || reply.Enhanced.StartsWith("4.7.", StringComparison.Ordinal)) && LockoutWords().IsMatch(reply.Text);

    [GeneratedRegex(@"too many|locked|lockout|blocked|banned|rate.?limit|exceeded|suspended", RegexOptions.IgnoreCase)]
    private static partial Regex LockoutWords();

    private static PortCheck.PortSpec Port(Arguments args) => args.Value("--port") is { } p ? PortCheck.PortSpec.Parse(p, "--port") : new PortCheck.PortSpec(587, PortCheck.PortRole.Submission);

    /// <summary>
    /// The password in each form it crosses the network in (as it is, base64, and inside the PLAIN
    /// response), taken out of everything a step says: a server that echoes what it was sent must
    /// not make the report carry it.
    /// </summary>
    private sealed class Secrets(string user, string password)
    {
        private const string Hidden = "(password hidden)";

        // A short password is not looked for as such: "587" would be hidden in "127.0.0.1:587" and so
        // revealed by its hiding. The PLAIN blob is always long enough to be itself.
        private readonly string[] _forms = new[]
        {
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{user}\0{password}")),
            Convert.ToBase64String(Encoding.UTF8.GetBytes(password)),
            password,
        }.Where((f, i) => i == 0 || f.Length >= 8).ToArray();

        public DiagStep Hide(DiagStep step) => step with
        {
            Title = Scrub(step.Title),
            Tried = Scrub(step.Tried),
            Saw = Scrub(step.Saw),
            Cause = step.Cause is null ? null : Scrub(step.Cause),
            Fix = step.Fix is null ? null : Scrub(step.Fix),
            Data = step.Data is null ? null : (JsonObject)ScrubNode(step.Data)!,
        };

        private string Scrub(string text)
        {
            foreach (var form in _forms)
            {
                text = text.Replace(form, Hidden, StringComparison.Ordinal);
            }
            return text;
        }

        private JsonNode? ScrubNode(JsonNode? node) => node switch
        {
            JsonObject o => new JsonObject(o.Select(p => KeyValuePair.Create(p.Key, ScrubNode(p.Value)))),
            JsonArray a => new JsonArray([.. a.Select(ScrubNode)]),
            JsonValue v when v.TryGetValue<string>(out var s) => JsonValue.Create(Scrub(s)),
            _ => node?.DeepClone(),
        };
    }
}
