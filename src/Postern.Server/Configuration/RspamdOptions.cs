namespace Postern.Server.Configuration;

/// <summary>
/// rspamd asked over its own HTTP protocol (<c>POST /checkv2</c> on its normal worker) at the end of
/// DATA, before the 250 (issue 13; docs/filters-rspamd.md). Off unless <see cref="Url"/> is set.
/// </summary>
public sealed class RspamdOptions
{
    /// <summary>
    /// The normal worker's address, e.g. http://127.0.0.1:11333 (rspamd's default bind). Default
    /// empty: rspamd is not asked. A path, when given, is the prefix /checkv2 is put under (a reverse proxy).
    /// </summary>
    public string Url { get; set; } = "";

    /// <summary>
    /// How long one scan may take, from connecting to the last byte of the reply. Default 15 seconds:
    /// rspamd's own task_timeout is 8 seconds, so a healthy rspamd always answers within it, while
    /// the client waits far less than its own 10-minute DATA timeout (RFC 5321 §4.5.3.2.6).
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// What happens when rspamd is down, slow or answers garbage: true accepts the message unscanned,
    /// false answers 451 4.7.1 so the sender retries later. Default false, as Postfix's
    /// milter_default_action (tempfail) and Postern's milters: a 451 loses no mail (senders retry
    /// for days, RFC 5321 §4.5.4.1), while accepting would let spam through, and on submission send
    /// mail unsigned, unnoticed until someone reads the log.
    /// </summary>
    public bool FailOpen { get; set; }

    /// <summary>
    /// Scan mail on submission listeners (authenticated users) too. Default false: Postern signs
    /// DKIM itself and limits each user's sending; turn it on to have rspamd check outbound mail
    /// (a stolen password) or sign it.
    /// </summary>
    public bool CheckSubmission { get; set; }

    /// <summary>The Settings-ID sent for mail on mx listeners (rspamd's settings module picks its rules by it). Default empty: none sent.</summary>
    public string SettingsIdMx { get; set; } = "";

    /// <summary>
    /// The Settings-ID sent for mail on submission listeners, e.g. one whose rspamd settings sign
    /// DKIM and skip the inbound checks. Default empty: none sent (rspamd then knows the mail as
    /// authenticated by the User header alone).
    /// </summary>
    public string SettingsIdSubmission { get; set; } = "";

    /// <summary>
    /// Messages larger than this, in octets, are not scanned (accepted unscanned, logged), as rspamd's
    /// own max_message. Default 50 MiB: rspamd's max_message default, and Postern's
    /// Limits.MaxMessageSize, so by default every message is scanned.
    /// </summary>
    public long MaxMessageSize { get; set; } = 52_428_800;

    /// <summary>
    /// Which X-Spam-* header fields Postern adds to an accepted message (rspamd's own header changes
    /// always apply). Default all: X-Spam-Status, X-Spam-Score, X-Spam-Action and X-Spam-Symbols, what
    /// Sieve rules and mail clients filter on.
    /// </summary>
    public RspamdHeaders Headers { get; set; } = RspamdHeaders.All;
}

/// <summary>The X-Spam-* header fields Postern adds from rspamd's reply (Rspamd.Headers).</summary>
public enum RspamdHeaders
{
    /// <summary>X-Spam-Status, X-Spam-Score, X-Spam-Action and X-Spam-Symbols.</summary>
    All,

    /// <summary>X-Spam-Status and X-Spam-Score only: no symbol list in every message.</summary>
    Score,

    /// <summary>None of Postern's: only the header changes rspamd itself asks for (its milter_headers module, DKIM-Signature).</summary>
    None,
}
