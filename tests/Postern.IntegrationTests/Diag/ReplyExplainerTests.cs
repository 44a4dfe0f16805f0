using Postern.Diagnostics;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6: what a remote reply means (for `diag deliver` and `queue show`). The replies are the
/// ones real receivers send, in their documented wording (Gmail's and Microsoft's published
/// bounce lists, Yahoo's postmaster codes, Postfix's and Exim's default texts, Postern's own
/// catalogue), as they end up in a recipient's Detail: code, enhanced code, text, with MailKit's
/// line breaks for multi-line replies. And Postern's own deferral reasons, which carry no code.
/// </summary>
public sealed class ReplyExplainerTests
{
    public static TheoryData<string, string> Replies => new()
    {
        // Unknown user or mailbox.
        { "550 5.1.1 <nobody@pf.test>: Recipient address rejected: User unknown in virtual mailbox table", "unknown_user" },
        { "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient table", "unknown_user" },
        { "550 5.1.1 The email account that you tried to reach does not exist. Please try\n5.1.1 double-checking the recipient's email address for typos or\n5.1.1 unnecessary spaces. For more information, go to\n5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si123456wrb.1 - gsmtp", "unknown_user" },
        { "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302) [DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]", "unknown_user" },
        { "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [AM4PEPF00027A5F.eurprd04.prod.outlook.com]", "unknown_user" },
        { "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "unknown_user" },
        { "554 delivery error: dd This user doesn't have a yahoo.com account (nobody@yahoo.com) [0] - mta1234.mail.ne1.yahoo.com", "unknown_user" },
        { "550 No Such User Here", "unknown_user" },
        { "550 Unrouteable address", "unknown_user" },
        { "550 5.1.1 No such user here", "unknown_user" },
        { "450 4.1.1 <x@pf.test>: Recipient address rejected: unverified address: host mx.pf.test said: 550 no mailbox", "unknown_user" },
        // Mailbox full, disabled.
        { "452 4.2.2 The email account that you tried to reach is over quota. Please direct\n4.2.2 the recipient to\n4.2.2  https://support.google.com/mail/?p=OverQuotaTemp - gsmtp", "mailbox_full" },
        { "552 5.2.2 <bob@example.org> Quota exceeded (mailbox for user is full)", "mailbox_full" },
        { "452 4.2.2 The recipient's inbox is out of storage space.", "mailbox_full" },
        { "550 5.2.1 The email account that you tried to reach is disabled.", "mailbox_disabled" },
        // Greylisting, and temporary refusals worded like it.
        { "450 4.2.0 <carol@pf.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/pf.test.html", "greylisted" },
        { "451 4.7.1 greylisted, try again later", "greylisted" },
        { "450 4.7.1 <later@pf.test>: Recipient address rejected: greylisted, try again later", "greylisted" },
        { "451 4.7.1 Please try again later", "greylisted" },
        { "451 Greylisted, please try again in 300 seconds", "greylisted" },
        // Blocklists.
        { "554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.7", "blocklisted" },
        { "554 5.7.1 Service unavailable; client [192.0.2.7] listed at zen.spamhaus.org", "blocklisted" },
        { "550 5.7.1 Unfortunately, messages from [192.0.2.7] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.", "blocklisted" },
        { "550 5.7.606 Access denied, banned sending IP [192.0.2.7]. To request removal from this list please visit https://sender.office.com/ and follow the directions.", "blocklisted" },
        { "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.7, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes", "blocklisted" },
        { "554 Service unavailable; Client host [192.0.2.7] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.7", "blocklisted" },
        { "554 5.7.1 Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.7", "blocklisted" },
        { "550 Rejected because 192.0.2.7 is in a black list at zen.spamhaus.org", "blocklisted" },
        { "554 resimta-ch2-18v.sys.comcast.net comcast 192.0.2.7 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001", "blocklisted" },
        // Relaying.
        { "554 5.7.1 <y@example.net>: Relay access denied", "relay_denied" },
        { "550 5.7.1 Unable to relay", "relay_denied" },
        { "550 relay not permitted", "relay_denied" },
        { "550 5.7.1 <y@example.net>... Relaying denied. Proper authentication required.", "relay_denied" },
        // Reverse DNS.
        { "550 5.7.25 [192.0.2.7] The IP address sending this message does not have a\n5.7.25 PTR record setup, or the corresponding forward DNS entry does not\n5.7.25 point to the sending IP.", "no_reverse_dns" },
        { "450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.7]", "no_reverse_dns" },
        { "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.7]", "no_reverse_dns" },
        // SPF, DKIM, DMARC.
        { "550 5.7.23 <bob@example.org>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.open-spf.org/Why;id=alice@example.test;ip=192.0.2.7;r=<UNKNOWN>", "spf_failed" },
        { "550 5.7.23 SPF validation failed", "spf_failed" },
        { "550 5.7.26 This mail has been blocked because the sender is unauthenticated.\n5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.", "dmarc_failed" },
        { "550 5.7.26 Unauthenticated email from example.test is not accepted due to domain's\n5.7.26 DMARC policy.", "dmarc_failed" },
        { "550 5.7.1 Message rejected by the DMARC policy of the sender's domain", "dmarc_failed" },
        { "550 5.7.509 Access denied, sending domain example.test does not pass DMARC verification and has a DMARC policy of reject.", "dmarc_failed" },
        { "550 5.7.20 No passing DKIM signature found", "dkim_failed" },
        // Size.
        { "552 5.3.4 Message size exceeds fixed limit", "message_too_big" },
        { "552 5.2.3 Your message exceeded Google's message size limits.", "message_too_big" },
        { "552 5.3.4 Message size exceeds fixed maximum message size", "message_too_big" },
        // TLS and authentication.
        { "530 5.7.0 Must issue a STARTTLS command first.", "tls_required" },
        { "530 5.7.10 Encryption needed", "tls_required" },
        { "530 5.7.57 Client not authenticated to send mail during MAIL FROM", "auth_required" },
        { "530 5.7.0 Authentication required", "auth_required" },
        // Rate limits.
        { "421 4.7.28 [192.0.2.7] Our system has detected an unusual rate of\n4.7.28 unsolicited mail originating from your IP address.", "rate_limited" },
        { "421 4.7.0 [TSS04] Messages from 192.0.2.7 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "rate_limited" },
        { "451 4.7.500 Server busy. Please try again later from [192.0.2.7]. (S77714)", "rate_limited" },
        { "421 4.7.0 mx.example.org Error: too many connections from 192.0.2.7", "rate_limited" },
        { "421 4.7.0 Try again later, closing connection. (EHLO)\n4.7.0  For more information, go to\n4.7.0  https://support.google.com/a/answer/3221692 d2e1a72fcca58-7a.1 - gsmtp", "rate_limited" },
        { "450 4.7.1 Error: too much mail from 192.0.2.7", "rate_limited" },
        { "450 4.7.1 Too many messages from you this hour, try again later", "rate_limited" },
        { "450 4.2.1 The user you are trying to contact is receiving mail at a rate that\n4.2.1 prevents additional messages from being delivered.", "rate_limited" },
        // The receiving server's own trouble.
        { "451 4.3.0 <x@pf.test>: Temporary lookup failure", "server_trouble" },
        { "452 4.3.1 Insufficient system storage", "server_trouble" },
        { "451 Temporary local problem - please try later", "server_trouble" },
        { "421 4.3.2 Service shutting down, try again later", "server_trouble" },
        // Senders, HELO, loops, content, policy.
        { "450 4.1.8 <alice@nowhere.test>: Sender address rejected: Domain not found", "sender_rejected" },
        { "550 Verification failed for <alice@example.test>\n550-Unrouteable address\n550 Sender verify failed", "sender_rejected" },
        { "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname", "helo_rejected" },
        { "554 5.4.6 Too many hops (Received fields): mail loop?", "mail_loop" },
        { "554 5.4.14 Hop count exceeded - possible mail loop", "mail_loop" },
        { "550 5.7.1 [192.0.2.7] Our system has detected that this message is\n5.7.1 likely unsolicited mail.", "spam_suspected" },
        { "550 5.7.1 The user or domain that you are sending to (or from) has a policy that\n5.7.1 prohibited the mail that you sent.", "policy_rejected" },
        { "550 Administrative prohibition", "policy_rejected" },
        { "550 5.1.2 Address literals are not accepted as recipients", "domain_not_found" },
        // Postern's own deferral and bounce reasons (src/Postern.Server/Delivery).
        { "556 5.1.10 Recipient address has null MX: nomail.test accepts no mail (RFC 7505)", "mx_null" },
        { "550 5.1.2 far.test does not exist (NXDOMAIN)", "domain_not_found" },
        { "550 5.1.2 far.test has no MX and no address record", "domain_not_found" },
        { "DNS: DNS MX far.test: ServerFailure", "dns_failure" },
        { "mx.far.test[192.0.2.7]:25: Connection refused (tried mx.far.test[192.0.2.7], mx2.far.test[192.0.2.8])", "connection_refused" },
        { "mx.far.test[192.0.2.7]:25: The operation has timed out. (tried mx.far.test[192.0.2.7])", "connection_timeout" },
        { "mx.far.test[192.0.2.7]:25: The SMTP server has unexpectedly disconnected.", "connection_lost" },
        { "mx.far.test[2001:db8::7]:25: Network is unreachable", "unreachable" },
        { "553 5.6.7 mx.far.test[192.0.2.7]:25 does not support SMTPUTF8, which this message needs", "smtputf8_unsupported" },
        { "552 5.3.4 Message too big for mx.far.test[192.0.2.7]:25 (40000000 > 35882577 octets)", "message_too_big" },
        { "smtp.isp.test[192.0.2.25]:587 refused the credentials of user 'me@isp.test' (535: 5.7.8 Authentication credentials invalid): check Relay.Smarthost.Username and the password in Relay.Smarthost.PasswordFile", "smarthost_credentials" },
        { "smarthost smtp.isp.test cannot be resolved (smtp.isp.test does not exist (NXDOMAIN)): check Relay.Smarthost.Host and Dns.Servers", "smarthost_unresolvable" },
        { "cannot read Relay.Smarthost.PasswordFile /etc/postern/smarthost.pw: Could not find file '/etc/postern/smarthost.pw'.", "smarthost_password_file" },
        { "smtp.isp.test[192.0.2.25]:587: TLS certificate not accepted (The remote certificate is invalid); fix the certificate or set Relay.Smarthost.VerifyCertificate to false", "smarthost_certificate" },
        { "smtp.isp.test[192.0.2.25]:25: The SMTP server does not support the STARTTLS extension.", "starttls_unsupported" },
        { "recipient is not known at the moment (account or alias removed?)", "local_recipient_unknown" },
        // Whatever else: by its class.
        { "451 4.4.0 something odd happened", "server_trouble" },
        { "450 nope", "temporary_failure" },
        { "550 nope", "permanent_failure" },
    };

    [Theory]
    [MemberData(nameof(Replies))]
    public void EachRealReplyGetsItsDiagnosis(string detail, string code)
    {
        var e = ReplyExplainer.Explain(detail);
        Assert.True(code == e.Code, $"\"{detail}\" gave {e.Code}, not {code}");
        Assert.False(string.IsNullOrWhiteSpace(e.Cause));
        Assert.False(string.IsNullOrWhiteSpace(e.Fix));
    }

    [Fact]
    public void ABlocklistRefusalNamesTheAddressAndTheListAndTheCommandToRun()
    {
        var e = ReplyExplainer.Explain("554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.7");
        Assert.Contains("(192.0.2.7)", e.Cause, StringComparison.Ordinal);
        Assert.Contains("(zen.spamhaus.org)", e.Cause, StringComparison.Ordinal);
        Assert.Contains("postern diag dnsbl 192.0.2.7", e.Fix, StringComparison.Ordinal);
        Assert.Contains("Relay.Smarthost", e.Fix, StringComparison.Ordinal);

        // Without an address in the reply, the command says which one to give.
        Assert.Contains("postern diag dnsbl YOUR_IP", ReplyExplainer.Explain("550 5.7.1 Blocked by SpamCop").Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void AnExpiredMessageIsExplainedByItsLastError()
    {
        var e = ReplyExplainer.Explain("4.4.7 Delivery time expired after 5.00:00:00; last error: 450 4.7.1 <later@pf.test>: Recipient address rejected: greylisted, try again later");
        Assert.Equal("queue_expired", e.Code);
        Assert.Contains("Delivery.MaxQueueLifetime", e.Cause, StringComparison.Ordinal);
        Assert.Contains("(greylisted)", e.Cause, StringComparison.Ordinal);
    }

    [Fact]
    public void ATemporaryUnknownUserIsNotCalledPermanent()
    {
        Assert.Contains("for now", ReplyExplainer.Explain("450 4.1.1 <x@y>: Recipient address rejected: User unknown").Cause, StringComparison.Ordinal);
        Assert.DoesNotContain("for now", ReplyExplainer.Explain("550 5.1.1 <x@y>: Recipient address rejected: User unknown").Cause, StringComparison.Ordinal);
    }

    [Fact]
    public void AProbedReplyIsReadTheSameWay()
    {
        var reply = new SmtpReply(550, "5.1.1", ["<nobody@pf.test>: Recipient address rejected: User unknown in virtual mailbox table"]);
        Assert.Equal("unknown_user", ReplyExplainer.Explain(reply).Code);
    }
}
