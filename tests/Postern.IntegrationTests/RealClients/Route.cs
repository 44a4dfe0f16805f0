using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.RealClients;

/// <summary>The four ways a real client reaches Postern: which listener, whether TLS, whether AUTH.</summary>
public enum Route
{
    /// <summary>Port-25 role, cleartext, no AUTH: a stranger delivering to a local user.</summary>
    MxPlain,

    /// <summary>Port-25 role upgraded with STARTTLS, no AUTH.</summary>
    MxStartTls,

    /// <summary>Port-587 role: STARTTLS, then AUTH (RFC 6409).</summary>
    SubmissionStartTlsAuth,

    /// <summary>Port-465 role: implicit TLS, then AUTH (RFC 8314).</summary>
    SubmissionsImplicitTlsAuth,
}

/// <summary>What each route means for the envelope and for the trace header Postern writes.</summary>
internal static class RouteFacts
{
    public const string Alice = "alice@example.test";
    public const string Bob = "bob@example.test";
    public const string Stranger = "carol@remote.example";

    public static int Port(this Route route, TestServer server) => route switch
    {
        Route.MxPlain or Route.MxStartTls => server.MxPort,
        Route.SubmissionStartTlsAuth => server.SubmissionPort,
        Route.SubmissionsImplicitTlsAuth => server.SubmissionsPort,
        _ => throw new ArgumentOutOfRangeException(nameof(route)),
    };

    public static bool Authenticates(this Route route) =>
        route is Route.SubmissionStartTlsAuth or Route.SubmissionsImplicitTlsAuth;

    public static bool UsesTls(this Route route) => route != Route.MxPlain;

    /// <summary>On mx a stranger writes to alice; on submission alice (authenticated) writes to bob.</summary>
    public static string Sender(this Route route) => route.Authenticates() ? Alice : Stranger;

    public static string Recipient(this Route route) => route.Authenticates() ? Bob : Alice;

    /// <summary>RFC 3848: ESMTP, plus S with TLS, plus A with AUTH.</summary>
    public static string Rfc3848Protocol(this Route route) => route switch
    {
        Route.MxPlain => "ESMTP",
        Route.MxStartTls => "ESMTPS",
        _ => "ESMTPSA",
    };
}
