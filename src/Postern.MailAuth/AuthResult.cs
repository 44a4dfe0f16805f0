namespace Postern.MailAuth;

/// <summary>
/// The result words of RFC 8601 §2.7 (shared by SPF, DKIM, DMARC and ARC), as they appear in an
/// Authentication-Results header field.
/// </summary>
public enum AuthResult
{
    None,
    Pass,
    Fail,
    SoftFail,
    Neutral,
    TempError,
    PermError,
    Policy,
}
