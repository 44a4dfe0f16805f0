using System.Security.Authentication;

namespace Postern.Server.Logging;

/// <summary>
/// The one spelling of a TLS version everywhere Postern writes one (log lines, the Received field,
/// delivery details, `postern diag`): OpenSSL's, as Postfix logs it, so one grep finds both.
/// </summary>
public static class TlsNames
{
    /// <summary>TLSv1.3, TLSv1.2 (and the old versions, named only to report them; they are never offered).</summary>
    public static string Version(SslProtocols protocol) => protocol switch
    {
        SslProtocols.Tls13 => "TLSv1.3",
        SslProtocols.Tls12 => "TLSv1.2",
#pragma warning disable SYSLIB0039 // named to report an old version, never offered
        SslProtocols.Tls11 => "TLSv1.1",
        SslProtocols.Tls => "TLSv1",
#pragma warning restore SYSLIB0039
        _ => protocol.ToString(),
    };
}
