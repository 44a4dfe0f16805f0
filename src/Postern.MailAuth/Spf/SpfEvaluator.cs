using System.Net;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Spf;

/// <summary>
/// Sender Policy Framework (RFC 7208): is this client allowed to use this domain? Evaluates check_host()
/// (§4) for the MAIL FROM identity, the HELO identity, or any (ip, domain, sender) triple, asking DNS
/// through <see cref="IMailAuthDns"/> (TXT records only; the SPF RR type is not used). All of RFC 7208 is
/// here: the eight mechanisms with CIDR lengths, redirect= and exp=, the macro language, the limits of
/// §4.6.4 (10 DNS-querying terms, 2 void lookups, 10 address lookups per mx or ptr, and an elapsed-time
/// limit), the §4.3 checks on the domain, and IPv4-mapped IPv6 clients treated as IPv4.
/// Thread-safe: each check keeps its own state, so one evaluator serves every session.
/// </summary>
public sealed class SpfEvaluator
{
    /// <summary>RFC 7208 §4.6.4: a limit on the elapsed time of one evaluation that "SHOULD allow at least 20 seconds".</summary>
    public static readonly TimeSpan DefaultTimeLimit = TimeSpan.FromSeconds(20);

    private readonly IMailAuthDns _dns;
    private readonly string _receivingHost;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeLimit = DefaultTimeLimit;

    /// <summary>Creates an evaluator.</summary>
    /// <param name="dns">Where the DNS questions go.</param>
    /// <param name="receivingHost">This host's name, the %{r} macro of explanations (RFC 7208 §7.2); "unknown" when empty.</param>
    /// <param name="time">The clock for the time limit and the %{t} macro; the system clock when null.</param>
    public SpfEvaluator(IMailAuthDns dns, string receivingHost, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(dns);
        _dns = dns;
        _receivingHost = string.IsNullOrEmpty(receivingHost) ? "unknown" : receivingHost;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// The longest one evaluation may take, by the injected clock; past it the result is temperror
    /// (RFC 7208 §4.6.4). Default <see cref="DefaultTimeLimit"/> (20 s), the least the RFC recommends.
    /// </summary>
    public TimeSpan TimeLimit
    {
        get => _timeLimit;
        init => _timeLimit = value > TimeSpan.Zero && value <= TimeSpan.FromHours(1)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(TimeLimit), value, "the SPF time limit must be more than 0 and at most an hour");
    }

    /// <summary>
    /// Checks the MAIL FROM identity (RFC 7208 §2.4): the domain of the reverse-path, or for the null
    /// reverse-path "postmaster@" and the HELO name.
    /// </summary>
    /// <param name="ip">The SMTP client's address.</param>
    /// <param name="mailFrom">The reverse-path without angle brackets ("local@domain"), or "" for &lt;&gt;.</param>
    /// <param name="helo">The HELO/EHLO name the client gave.</param>
    /// <param name="cancellationToken">Cancels the check (it then throws).</param>
    public Task<SpfOutcome> CheckMailFromAsync(IPAddress ip, string mailFrom, string helo, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mailFrom);
        if (mailFrom.Length == 0)
        {
            return CheckHeloAsync(ip, helo, cancellationToken);
        }
        var at = mailFrom.LastIndexOf('@');
        return CheckHostAsync(ip, at < 0 ? "" : mailFrom[(at + 1)..], mailFrom, helo, cancellationToken);
    }

    /// <summary>
    /// Checks the HELO identity (RFC 7208 §2.3): the HELO/EHLO name, with "postmaster@" and that name as
    /// the sender. A HELO that is an address literal or not a multi-label name gives none (§4.3).
    /// </summary>
    public Task<SpfOutcome> CheckHeloAsync(IPAddress ip, string helo, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(helo);
        return CheckHostAsync(ip, helo, "postmaster@" + helo, helo, cancellationToken);
    }

    /// <summary>
    /// check_host(&lt;ip&gt;, &lt;domain&gt;, &lt;sender&gt;) of RFC 7208 §4.
    /// </summary>
    /// <param name="ip">The SMTP client's address; an IPv4-mapped IPv6 address is taken as IPv4 (§5).</param>
    /// <param name="domain">The domain whose policy is checked.</param>
    /// <param name="sender">"local-part@domain"; an empty local-part becomes "postmaster" (§4.3).</param>
    /// <param name="helo">The HELO/EHLO name, for the %{h} macro.</param>
    /// <param name="cancellationToken">Cancels the check (it then throws).</param>
    public async Task<SpfOutcome> CheckHostAsync(IPAddress ip, string domain, string sender, string helo, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ip);
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(sender);
        ArgumentNullException.ThrowIfNull(helo);

        ip = ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : new IPAddress(ip.GetAddressBytes()); // no scope id
        var at = sender.LastIndexOf('@');
        var localPart = at < 0 ? "" : sender[..at];
        var senderDomain = at < 0 ? domain : sender[(at + 1)..];
        if (localPart.Length == 0)
        {
            // RFC 7208 §4.3: "If the <sender> has no local-part, substitute the string "postmaster"".
            localPart = "postmaster";
            sender = $"{localPart}@{senderDomain}";
        }

        // RFC 7208 §4.3: a malformed domain, or one that is not multi-label, is "none" before any DNS.
        if (SpfDomainName.NormalizeIdentity(domain) is not { } name)
        {
            return new SpfOutcome(AuthResult.None, domain, sender,
                $"'{SpfMacroString.Printable(domain)}' is not a domain name SPF can check");
        }

        var values = new SpfMacroValues(sender, localPart, senderDomain, name, ip, helo, _receivingHost, _time.GetUtcNow());
        using var deadline = new CancellationTokenSource(TimeLimit, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var check = new SpfCheck(_dns, values, _time, TimeLimit, linked.Token, cancellationToken);
        var verdict = await check.RunAsync(name).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();

        // RFC 7208 §6.2: without a usable exp=, a default explanation.
        var explanation = verdict.Result == AuthResult.Fail ? verdict.Explanation ?? DefaultExplanation(name, ip) : null;
        return new SpfOutcome(verdict.Result, domain, sender, verdict.Reason, explanation, verdict.Domain, verdict.Record, verdict.Term);
    }

    /// <summary>The explanation of a fail whose record gives none (RFC 7208 §6.2 lets the receiver choose it).</summary>
    internal static string DefaultExplanation(string domain, IPAddress ip) =>
        $"{domain} does not designate {ip} as a permitted sender";
}
