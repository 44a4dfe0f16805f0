namespace Postern.MailAuth.Spf;

/// <summary>
/// What one SPF check_host() evaluation (RFC 7208 §4) decided, and why. <see cref="Result"/> is one of
/// None, Neutral, Pass, Fail, SoftFail, TempError or PermError (RFC 7208 §2.6); SPF never gives
/// <see cref="AuthResult.Policy"/>.
/// </summary>
/// <param name="Result">The SPF result.</param>
/// <param name="Domain">The &lt;domain&gt; that was checked: the MAIL FROM domain or the HELO name.</param>
/// <param name="Sender">The &lt;sender&gt; the check used, with "postmaster" put in for a missing
/// local-part (RFC 7208 §4.3) — the value for smtp.mailfrom in Authentication-Results.</param>
/// <param name="Reason">One line for logs and the Authentication-Results comment: which term matched, or
/// which error stopped the evaluation. Plain ASCII, no line breaks.</param>
/// <param name="Explanation">For <see cref="AuthResult.Fail"/> only: the text of the deciding domain's
/// exp= modifier with its macros expanded (RFC 7208 §6.2), or a default explanation. Printable ASCII
/// and spaces only, so it can go into an SMTP reply as is. Null for every other result.</param>
/// <param name="DecidingDomain">The domain whose SPF record decided (after any redirect=), or null when no
/// record was evaluated.</param>
/// <param name="DecidingRecord">That SPF record's text as published, or null. When it is the record with
/// a syntax error it may hold any character: write <paramref name="Reason"/> into headers, not this.</param>
/// <param name="DecidingTerm">The term of that record that matched (for example "-all" or
/// "include:_spf.example.net"), or null when none did (default neutral, errors, redirect to nothing).</param>
public sealed record SpfOutcome(
    AuthResult Result,
    string Domain,
    string Sender,
    string Reason,
    string? Explanation = null,
    string? DecidingDomain = null,
    string? DecidingRecord = null,
    string? DecidingTerm = null);
