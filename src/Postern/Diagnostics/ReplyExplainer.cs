using System.Net;
using System.Text.RegularExpressions;

namespace Postern.Diagnostics;

/// <summary>
/// What a failed delivery means, in plain words: <paramref name="Code"/> a stable snake_case name
/// for the diagnosis (<c>unknown_user</c>, <c>greylisted</c>, <c>blocklisted</c>), <paramref name="Cause"/>
/// the likely cause and <paramref name="Fix"/> what to do, naming the setting, record or command.
/// </summary>
public sealed record ReplyExplanation(string Code, string Cause, string Fix);

/// <summary>
/// Reads a remote SMTP reply — or one of Postern's own deferral reasons, as kept in a recipient's
/// Detail in queue/state — and says what it means and what to do (issue 6: `diag deliver` and
/// `queue show`). Receivers word the same refusal in many ways, so the reply is judged by its words
/// first where they are specific (a blocklist named, "greylisted"), then by its enhanced status code
/// (RFC 3463, and the registry's later codes: RFC 7372 for 5.7.20–5.7.26, RFC 7505 for 5.1.10 and
/// 5.7.27), then by its basic code (RFC 5321 §4.2). Pure: no I/O, tested with a table of real
/// replies (Gmail, Microsoft, Yahoo, Postfix, Exim, Postern).
/// </summary>
public static partial class ReplyExplainer
{
    /// <summary>A stored Detail: <c>550 5.1.1 &lt;x@y&gt;: Recipient address rejected: User unknown</c>, or Postern's own words.</summary>
    public static ReplyExplanation Explain(string detail)
    {
        ArgumentNullException.ThrowIfNull(detail);
        // Domain delivery appends the hosts it tried; they are not part of the reply.
        var text = TriedSuffix().Replace(detail.Trim(), "");
        var m = CodePrefix().Match(text);
        if (!m.Success)
        {
            return Own(text);
        }
        var code = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var (enhanced, rest) = SplitLines(text[m.Length..], code);
        return Explain(code, enhanced, rest);
    }

    /// <summary>A reply as <see cref="SmtpProbe"/> read it.</summary>
    public static ReplyExplanation Explain(SmtpReply reply) => Explain(reply.Code, reply.Enhanced, reply.Text);

    /// <summary>A reply in parts: its code, its enhanced status code when there is one, and its text.</summary>
    public static ReplyExplanation Explain(int code, string? enhanced, string text)
    {
        var t = (text ?? "").ToLowerInvariant();
        var temporary = code is >= 400 and < 500;
        var e = enhanced ?? "";
        bool Has(params string[] words) => words.Any(w => t.Contains(w, StringComparison.Ordinal));
        bool Word(string word) => Regex.IsMatch(t, $@"\b{Regex.Escape(word)}\b", RegexOptions.CultureInvariant);
        bool Enh(params string[] codes) => codes.Any(c => e.Length > 2 && e[2..] == c);

        // Our own reply to a message that needs SMTPUTF8 (SmtpDeliveryClient): first, it has a 5.6.7 code.
        if (Has("does not support smtputf8"))
        {
            return SmtpUtf8;
        }
        if (Has("null mx") || Enh("7.27"))
        {
            return Enh("7.27") || Has("sender address has null mx")
                ? new("sender_rejected", "the receiving server refused the envelope sender: its domain publishes a null MX (RFC 7505), so it could never take a bounce back",
                    "send from an address of a domain that takes mail (with MX records)")
                : NullMx;
        }
        if (Has("greylist", "graylist", "grey-list", "gray-list", "grey list", "gray list", "postgrey"))
        {
            return Greylisted;
        }
        if (IsBlocklist(t, e))
        {
            return Blocklisted(text ?? "");
        }
        if (Has("relay access denied", "relaying denied", "relay not permitted", "unable to relay", "relaying not allowed", "not permitted to relay",
            "relay denied", "relaying is not allowed", "we do not relay", "relay not allowed", "no relaying"))
        {
            return RelayDenied;
        }
        if (Enh("7.25") || Has("reverse dns", "reverse hostname", "reverse lookup", "ptr record", "cannot find your hostname", "rdns", "reverse dns entry", "no ptr")
            || Word("ptr"))
        {
            return NoReverseDns;
        }
        // RFC 7372: 5.7.26 "multiple authentication checks failed" is what Gmail and others give for DMARC.
        if (Enh("7.26") || Has("dmarc") || Has("unauthenticated email", "sender is unauthenticated", "mail is unauthenticated", "this mail has been blocked because the sender is unauthenticated"))
        {
            return DmarcFailed;
        }
        if (Enh("7.23", "7.24") || Word("spf"))
        {
            return SpfFailed;
        }
        if (Enh("7.20", "7.21", "7.22") || Word("dkim"))
        {
            return DkimFailed;
        }
        if (Enh("4.6", "4.14") || Has("mail loop", "too many hops", "hop count exceeded", "loop detected", "loops back"))
        {
            return MailLoop;
        }
        if (Enh("7.28") || MicrosoftThrottling(e) || Has("too many", "too much mail", "rate limit", "ratelimit", "rate-limit", "rate that prevents", "unusual rate",
            "sending rate", "unexpected volume", "temporarily deferred due to", "throttl", "exceeded the rate", "receiving mail at a rate", "server busy"))
        {
            return RateLimited;
        }
        if (Enh("2.2") || Has("quota", "mailbox full", "mailbox is full", "mailbox has exceeded", "inbox is full", "out of storage", "insufficient space in mailbox",
            "mailbox size limit", "storage space"))
        {
            return MailboxFull;
        }
        if (Enh("3.4", "2.3") || Has("too big", "too large", "size limit", "message size", "exceeds size", "exceeded google's message size", "exceeds the maximum size"))
        {
            return MessageTooBig;
        }
        if (Enh("7.10", "7.11") || Has("starttls", "tls required", "encryption required", "must use tls", "requires tls", "tls is required", "encryption needed"))
        {
            return TlsRequired;
        }
        if (Enh("7.57") || Has("authentication required", "auth required", "not authenticated", "authentication is required"))
        {
            return AuthRequired;
        }
        // The sender before the recipient: "Sender address rejected: Domain not found" would read as an unknown recipient.
        if (Enh("1.7", "1.8") || Has("sender address rejected", "sender verify failed", "sender rejected", "sender domain", "verification failed for",
            "sender address does not exist", "invalid sender", "unverified sender", "bad sender"))
        {
            return SenderRejected;
        }
        if (Enh("2.1") || Has("mailbox disabled", "account disabled", "account has been disabled", "mailbox is disabled", "inactive"))
        {
            return MailboxDisabled;
        }
        if (Enh("1.2") || Has("host not found", "domain not found", "no such domain", "does not exist (nxdomain)"))
        {
            return DomainNotFound;
        }
        if (Enh("1.1", "1.6", "1.10") || (Enh("4.1") && Has("recipient address rejected")) || (Enh("5.0") && Has("mailbox unavailable"))
            || Has("user unknown", "unknown user", "no such user", "no such recipient", "no such mailbox", "unknown recipient", "recipient not found",
                "recipientnotfound", "mailbox not found", "mailbox unavailable", "does not exist", "doesn't exist", "unrouteable address", "invalid recipient",
                "invalid mailbox", "no mailbox", "not a valid mailbox", "user not found", "address rejected", "doesn't have a", "recipient unknown", "not our customer"))
        {
            return temporary ? UnknownUserForNow : UnknownUser;
        }
        // Gmail's "421 4.7.0 Try again later, closing connection. (EHLO)" names the command it
        // answered, not a bad name: a temporary hold on this sender, as its documentation says.
        if (code == 421 && Enh("7.0") && Has("try again later, closing connection"))
        {
            return RateLimited;
        }
        if (Word("helo") || Word("ehlo"))
        {
            return HeloRejected;
        }
        if (Has("spam", "unsolicited", "content rejected", "message content", "suspicious", "phishing", "virus", "malware", "bulk mail"))
        {
            return SpamSuspected;
        }
        // Temporary: the server's own trouble, then greylisting in words that do not say so.
        if (Enh("3.0", "3.1", "3.2", "3.3", "3.5") || Has("local problem", "local error", "system storage", "insufficient system resources", "internal error",
            "resources are temporarily unavailable", "server error", "configuration problem", "shutting down", "not available"))
        {
            return temporary || code == 421 ? ServerTrouble : PolicyRejected;
        }
        if (temporary && (Enh("7.1", "2.0", "7.0") || code is 450 or 451) && Has("try again", "try later", "retry later", "please retry", "temporarily rejected", "come back later", "deferred"))
        {
            return Greylisted;
        }
        if (temporary && (Enh("4.1", "4.2", "4.3", "4.7") || code is 421 or 451 or 452))
        {
            return ServerTrouble;
        }
        if (e.StartsWith("5.7", StringComparison.Ordinal) || code == 554 || Has("policy", "administrative prohibition", "access denied", "prohibited", "not accepted", "blocked", "rejected"))
        {
            return temporary ? PolicyDeferred : PolicyRejected;
        }
        if (code == 552)
        {
            return MessageTooBig;
        }
        return temporary ? TemporaryFailure : code is >= 500 ? PermanentFailure : new("unrecognized", "a reply that is neither a temporary (4xx) nor a permanent (5xx) refusal", "read the server's words");
    }

    // ---- Postern's own words (src/Postern.Server/Delivery), which carry no SMTP code ----

    private static ReplyExplanation Own(string text)
    {
        var t = text.ToLowerInvariant();
        bool Has(params string[] words) => words.Any(w => t.Contains(w, StringComparison.Ordinal));
        // QueueRunner: "4.4.7 Delivery time expired after 5.00:00:00; last error: ...".
        const string lastError = "last error: ";
        if (t.StartsWith("4.4.7", StringComparison.Ordinal) || Has("delivery time expired"))
        {
            var at = text.IndexOf(lastError, StringComparison.OrdinalIgnoreCase);
            var last = at < 0 ? null : Explain(text[(at + lastError.Length)..]);
            return new("queue_expired",
                $"the message waited Delivery.MaxQueueLifetime without being delivered, so it bounced{(last is null ? "" : $"; the last error ({last.Code}): {last.Cause}")}",
                last?.Fix ?? "see the last error; Delivery.MaxQueueLifetime sets how long Postern keeps trying (5 days by default)");
        }
        // DomainDelivery: "DNS: DNS MX far.example: ServerFailure".
        if (t.StartsWith("dns:", StringComparison.Ordinal))
        {
            return DnsFailure;
        }
        if (Has("smarthost") && Has("cannot be resolved", "has no address"))
        {
            return new("smarthost_unresolvable", "the smarthost's name does not resolve to an address, so no mail can leave",
                "check the spelling of Relay.Smarthost.Host, and that Dns.Servers (or the system resolvers) answer: `postern diag dns` on its domain");
        }
        if (Has("cannot read relay.smarthost.passwordfile"))
        {
            return new("smarthost_password_file", "the smarthost password file cannot be read (missing, or not readable by the user Postern runs as)",
                "create Relay.Smarthost.PasswordFile with the password on one line, owned by the server's user, mode 600");
        }
        if (Has("refused the credentials"))
        {
            return new("smarthost_credentials", "the smarthost refused the user name or password",
                "check Relay.Smarthost.Username and the password in Relay.Smarthost.PasswordFile (try them with `postern diag auth HOST --user U --password-stdin`)");
        }
        if (Has("certificate not accepted"))
        {
            return new("smarthost_certificate", "the smarthost's TLS certificate is not valid for Relay.Smarthost.Host (expired, self-signed, or for another name)",
                "use the name the certificate is for in Relay.Smarthost.Host (see `postern diag port HOST`), or set Relay.Smarthost.VerifyCertificate to false if you trust the network path");
        }
        if (Has("does not support the starttls extension", "does not support starttls"))
        {
            return new("starttls_unsupported", "the smarthost does not offer STARTTLS, and Postern will not send a password in clear text",
                "use the smarthost's implicit-TLS port (Relay.Smarthost.Port 465 with Relay.Smarthost.Tls implicit) or its STARTTLS port (587)");
        }
        if (Has("does not support authentication"))
        {
            return new("auth_unsupported", "the smarthost offers no AUTH on this port, but Relay.Smarthost.Username is set",
                "use the smarthost's submission port (Relay.Smarthost.Port 587 or 465), or remove Relay.Smarthost.Username if it relays for your address without a login");
        }
        if (Has("does not support smtputf8"))
        {
            return SmtpUtf8;
        }
        if (Has("recipient is not known at the moment"))
        {
            return new("local_recipient_unknown",
                "the local address was valid when the message came in, but is not known now: the account or alias was removed, or the passwd file could not be read",
                "add the account again (`postern user add`) or the alias (Aliases), or let the message bounce at the end of Delivery.MaxQueueLifetime");
        }
        if (Has("no space left on device", "disk full", "disk quota exceeded"))
        {
            return new("local_storage_full", "the disk holding this server's data (DataDirectory) is full",
                "free space on the file system of DataDirectory; Postern retries local delivery every minute");
        }
        if (Has("connection refused", "actively refused"))
        {
            return new("connection_refused", "the receiving server refused the connection: nothing listens on its SMTP port, or a firewall rejects it",
                "nothing to change here if it is their server: Postern retries; `postern diag port HOST` shows it (and Delivery.RemotePort must be 25 outside tests)");
        }
        if (Has("timed out", "timeout", "operation was canceled", "operation has timed out", "did not respond", "no answer"))
        {
            return new("connection_timeout",
                "no answer from the receiving server: when every destination times out, outbound port 25 is blocked by your provider or firewall; otherwise that server is down or overloaded",
                "run `postern diag port HOST`: if port 25 times out while 587 answers, send through your provider's smarthost (Relay.Smarthost); otherwise Postern retries");
        }
        if (Has("no route to host", "network is unreachable", "host is unreachable", "unreachable"))
        {
            return new("unreachable", "there is no route from this server to the receiving server (often IPv6 without IPv6 connectivity)",
                "check this host's network and routes; Delivery.BindAddresses chooses the address mail leaves from");
        }
        if (Has("ssl", "tls", "handshake", "certificate"))
        {
            return new("tls_failed", "the TLS handshake with the receiving server failed (no common protocol version or cipher, or a broken server)",
                "run `postern diag port HOST` to see the handshake; Postern retries, and tells the receiver's postmaster if it lasts");
        }
        if (Has("connection reset", "unexpectedly disconnected", "broken pipe", "transport connection", "connection closed", "disconnected", "end of stream"))
        {
            return new("connection_lost", "the connection broke during the dialogue: the receiving server dropped it (overload, a filter that gives no reason) or the network did",
                "nothing to change here: Postern retries; if it lasts, `postern diag deliver ADDRESS` walks the same dialogue and shows where it breaks");
        }
        return new("delivery_error", "an error that is not an SMTP reply (see the words above)", "Postern retries a deferred recipient; if it lasts, `postern diag deliver ADDRESS` walks the delivery step by step");
    }

    // ---- the diagnoses ----

    private static readonly ReplyExplanation UnknownUser = new("unknown_user",
        "the receiving server says this mailbox does not exist there: a typo in the address, or an account that was closed",
        "check the address with whoever gave it (the part before @ exactly as the recipient's provider knows it); nothing on this server needs changing");

    private static readonly ReplyExplanation UnknownUserForNow = new("unknown_user",
        "the receiving server could not confirm for now that this mailbox exists (its own lookup failed, or it does not know the address yet)",
        "nothing to do while Postern retries; if it lasts, check the address with whoever gave it");

    private static readonly ReplyExplanation MailboxFull = new("mailbox_full",
        "the recipient's mailbox is full (over its quota)",
        "nothing on this server: the recipient must make room; Postern retries a temporary refusal (4xx) until Delivery.MaxQueueLifetime, a permanent one (5xx) bounces; tell the recipient another way");

    private static readonly ReplyExplanation MailboxDisabled = new("mailbox_disabled",
        "the mailbox exists but is disabled or no longer takes mail",
        "reach the recipient another way; nothing on this server needs changing");

    private static readonly ReplyExplanation Greylisted = new("greylisted",
        "greylisting (or a temporary refusal like it): the receiving server turns away the first attempt from a sender it does not know and accepts a retry after a few minutes",
        "nothing to do: Postern retries after Delivery.RetryInitialDelay (5 minutes by default) and the retry is normally accepted; if it never is, make every attempt leave from the same address (Delivery.BindAddresses)");

    private static readonly ReplyExplanation RelayDenied = new("relay_denied",
        "the server that answered does not take mail for this domain and refuses to pass it on: the domain's MX points at a server that is not its mail server, or a smarthost wants a login first",
        "check the domain's MX with `postern diag dns DOMAIN`; when sending through a smarthost, set Relay.Smarthost.Username and Relay.Smarthost.PasswordFile so it lets you relay");

    private static readonly ReplyExplanation NoReverseDns = new("no_reverse_dns",
        "the receiving server wants this server's sending address to have a reverse DNS (PTR) name that resolves back to the same address, and it has none, or one that does not match",
        "ask whoever owns the address (your hosting provider or ISP) to set its PTR to Hostname, and give Hostname an A/AAAA record with that address; check with `postern diag self`");

    private static readonly ReplyExplanation SpfFailed = new("spf_failed",
        "SPF failed: the sender domain's SPF record does not list the address this server sends from",
        "add this server's sending address to the sender domain's SPF TXT record (e.g. `ip4:ADDRESS` or `a:` with Hostname); check with `postern diag dns DOMAIN`");

    private static readonly ReplyExplanation DkimFailed = new("dkim_failed",
        "DKIM failed: the message had no valid DKIM signature of the sender's domain (the key is not published, does not match, or the message was changed)",
        "publish the domain's DKIM key as `postern dkim` shows it, and check it with `postern diag dns DOMAIN --selector SELECTOR`");

    private static readonly ReplyExplanation DmarcFailed = new("dmarc_failed",
        "DMARC failed: neither SPF nor DKIM passed for the From domain (aligned with it), and that domain's DMARC policy (or the receiver's own rule, as Gmail's) refuses such mail",
        "list this server's address in the From domain's SPF record and sign with its DKIM key (`postern dkim`), then check with `postern diag dns DOMAIN`");

    private static readonly ReplyExplanation MailLoop = new("mail_loop",
        "the message went around between servers (too many Received fields): forwarding that points back where it came from",
        "look for an alias or a forwarding rule that points back (Aliases here, forwarding at the destination)");

    private static readonly ReplyExplanation RateLimited = new("rate_limited",
        "the receiving server limits how much mail (or how many connections or recipients) it takes from one sender in a given time, or holds mail back while it judges this server's reputation",
        "nothing to do for a temporary refusal: Postern retries later; if it lasts, send less at once (Delivery.DestinationConcurrency) and check this server's reputation (`postern diag dnsbl ADDRESS`, SPF, DKIM and DMARC with `postern diag dns DOMAIN`)");

    private static readonly ReplyExplanation MessageTooBig = new("message_too_big",
        "the message is bigger than the receiving server accepts",
        "send it smaller (a link instead of a large attachment); the limit is the receiver's (the SIZE in its EHLO reply), not a setting of this server");

    private static readonly ReplyExplanation TlsRequired = new("tls_required",
        "the receiving server takes mail only over TLS, and this session was not encrypted",
        "through a smarthost: set Relay.Smarthost.Tls (starttls or implicit); by MX Postern uses STARTTLS whenever it is offered, so `postern diag port HOST` shows why it was not");

    private static readonly ReplyExplanation AuthRequired = new("auth_required",
        "the server wants a login before it takes mail: it is a submission server or a smarthost, not the domain's MX",
        "for your smarthost, set Relay.Smarthost.Username and Relay.Smarthost.PasswordFile; otherwise the domain's MX points at the wrong server (`postern diag dns DOMAIN`)");

    private static readonly ReplyExplanation SenderRejected = new("sender_rejected",
        "the receiving server refused the envelope sender: its domain does not resolve in public DNS, or the server could not verify the address",
        "send from an address whose domain has MX (or A) records in public DNS, and that takes mail (for a bounce, postmaster@ of a domain of this server)");

    private static readonly ReplyExplanation DomainNotFound = new("domain_not_found",
        "the recipient's domain does not exist in DNS (NXDOMAIN), or has neither MX nor address records",
        "check the part after @ for a typo; `postern diag dns DOMAIN` shows what DNS says");

    private static readonly ReplyExplanation NullMx = new("mx_null",
        "the recipient's domain publishes a null MX (RFC 7505): it says it takes no mail at all",
        "the address cannot receive mail: ask the recipient for another one");

    private static readonly ReplyExplanation HeloRejected = new("helo_rejected",
        "the receiving server refused the name this server gives in EHLO (not fully qualified, or not resolving to the sending address)",
        "set Hostname to a fully qualified name with an A/AAAA record of this server's sending address (and the PTR of that address back to it); check with `postern diag self`");

    private static readonly ReplyExplanation SpamSuspected = new("spam_suspected",
        "the receiver's filter judged the message spam or dangerous, by its content or by this server's reputation",
        "make sure SPF, DKIM and DMARC pass (`postern diag dns DOMAIN`) and the address is on no blocklist (`postern diag dnsbl ADDRESS`), then look at the content (links, attachments)");

    private static readonly ReplyExplanation ServerTrouble = new("server_trouble",
        "the receiving server has a temporary problem of its own (disk, configuration, overload, a restart)",
        "nothing to do here: Postern retries; if it lasts for days, tell the recipient's postmaster (postmaster@ their domain)");

    private static readonly ReplyExplanation PolicyRejected = new("policy_rejected",
        "the receiving server refused by a rule of its own; its words (often a reference or a URL) say which",
        "follow the reference in the reply, or ask the receiving side's postmaster; check this server's reputation (`postern diag dnsbl ADDRESS`) and records (`postern diag dns DOMAIN`)");

    private static readonly ReplyExplanation PolicyDeferred = new("policy_deferred",
        "the receiving server holds the mail back for now by a rule of its own (reputation, a check it could not finish)",
        "nothing to do at first: Postern retries; if it lasts, follow the reference in the reply and check `postern diag dnsbl ADDRESS` and `postern diag dns DOMAIN`");

    private static readonly ReplyExplanation DnsFailure = new("dns_failure",
        "DNS gave no answer (a timeout or SERVFAIL) for the recipient's domain: its name servers are down or broken, or this server's resolvers (Dns.Servers) do not answer",
        "nothing to do if it is the domain's: Postern retries and never bounces on this; if every domain fails, check Dns.Servers; `postern diag dns DOMAIN` asks the same questions");

    private static readonly ReplyExplanation SmtpUtf8 = new("smtputf8_unsupported",
        "the message needs SMTPUTF8 (an address with non-ASCII characters) and the receiving server does not offer it",
        "use an ASCII address for the sender and the recipient; nothing on this server needs changing");

    private static readonly ReplyExplanation TemporaryFailure = new("temporary_failure",
        "the receiving server refused for now (a 4xx reply) without saying why in words this check knows",
        "nothing to do at first: Postern retries until Delivery.MaxQueueLifetime; if it lasts, read the reply and ask the receiving side's postmaster");

    private static readonly ReplyExplanation PermanentFailure = new("permanent_failure",
        "the receiving server refused for good (a 5xx reply) without saying why in words this check knows",
        "read the reply; ask the receiving side's postmaster (postmaster@ their domain)");

    private static ReplyExplanation Blocklisted(string text)
    {
        var ip = Ipv4().Matches(text).Select(m => m.Value).FirstOrDefault(v => IPAddress.TryParse(v, out _));
        var zone = ListZone().Match(text) is { Success: true } z ? z.Groups[1].Value.TrimEnd('.') : null;
        return new("blocklisted",
            $"the receiving server refuses mail from this server's address{(ip is null ? "" : $" ({ip})")} because a blocklist names it{(zone is null ? "" : $" ({zone})")}: spam was seen from it, or its range is marked as not meant to send mail directly",
            $"run `postern diag dnsbl {ip ?? "YOUR_IP"}` to see which lists and why, stop what sent the spam, then ask each list for removal; meanwhile send through a smarthost (Relay.Smarthost)");
    }

    private static bool IsBlocklist(string t, string enhanced)
    {
        string[] words = ["blocked using", "listed at", "spamhaus", "spamcop", "barracuda", "dnsbl", "black list", "blacklist",
            "blocklist", "block list", "blocklisted", "sorbs", "proofpoint", "banned sending ip", "psbl", "uceprotect", "ipcheck", "poor reputation", "bad reputation",
            "banned sender", "traffic not accepted from this ip"];
        return words.Any(w => t.Contains(w, StringComparison.Ordinal))
            || (!t.Contains("not listed", StringComparison.Ordinal) && new[] { "listed in", "listed on", "listed by", "is listed" }.Any(w => t.Contains(w, StringComparison.Ordinal)))
            || Regex.IsMatch(t, @"\brbl\b", RegexOptions.CultureInvariant)
            // Microsoft: 5.7.606 to 5.7.649 are "banned sending IP"; S3150 is Outlook.com's block list.
            || t.Contains("(s3150)", StringComparison.Ordinal)
            || (enhanced.StartsWith("5.7.6", StringComparison.Ordinal) && enhanced.Length == 7 && int.TryParse(enhanced.AsSpan(4), out var n) && n is >= 606 and <= 649);
    }

    /// <summary>Microsoft's 4.7.500 to 4.7.699: "server busy", their throttling of a sending address.</summary>
    private static bool MicrosoftThrottling(string enhanced) =>
        enhanced.StartsWith("4.7.", StringComparison.Ordinal) && int.TryParse(enhanced.AsSpan(4), out var n) && n is >= 500 and <= 699;

    /// <summary>The enhanced code of the first line, and the text of every line without its code (multi-line replies repeat them).</summary>
    private static (string? Enhanced, string Text) SplitLines(string rest, int code)
    {
        string? enhanced = null;
        var lines = new List<string>();
        foreach (var raw in rest.Split('\n'))
        {
            var line = raw.Trim();
            // A multi-line reply kept whole: "550-5.1.1 ..." on the lines after the first.
            if (line.Length >= 4 && line.StartsWith(code.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) && line[3] is '-' or ' ')
            {
                line = line[4..];
            }
            var m = EnhancedPrefix().Match(line);
            if (m.Success && m.Groups[1].Value[0] - '0' == code / 100)
            {
                enhanced ??= m.Groups[1].Value;
                line = line[m.Length..];
            }
            lines.Add(line.Trim());
        }
        return (enhanced, string.Join(" ", lines.Where(l => l.Length > 0)));
    }

    [GeneratedRegex(@"^([2-5][0-9][0-9])(?:[ -]|$)")]
    private static partial Regex CodePrefix();

    [GeneratedRegex(@"^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:\s+|$)")]
    private static partial Regex EnhancedPrefix();

    [GeneratedRegex(@"\s*\(tried [^()]*\)$")]
    private static partial Regex TriedSuffix();

    [GeneratedRegex(@"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])")]
    private static partial Regex Ipv4();

    [GeneratedRegex(@"(?:blocked using|listed at|listed in|listed on|listed by|black list at)\s+([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)", RegexOptions.IgnoreCase)]
    private static partial Regex ListZone();
}
