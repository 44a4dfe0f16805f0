using System.Globalization;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.RealClients;

/// <summary>swaks, the administrator's SMTP test tool, on every listener.</summary>
public sealed class SwaksSendsOnEveryListener
{
    [Theory]
    [InlineData(Route.MxPlain, null)]
    [InlineData(Route.MxStartTls, null)]
    [InlineData(Route.SubmissionStartTlsAuth, "LOGIN")]
    [InlineData(Route.SubmissionsImplicitTlsAuth, "PLAIN")]
    public async Task DeliversUnchanged(Route route, string? mechanism)
    {
        await using var server = await TestServer.StartAsync();
        var message = TestMessage.Raw("swaks", route);
        // swaks takes the file as the whole DATA portion: it dot-stuffs, turns a final "." line into
        // the terminator, and, given a message that has all its headers, adds nothing.
        var file = Path.Combine(server.DataDir, "swaks-message.eml");
        await File.WriteAllBytesAsync(file, [.. message, .. ".\r\n"u8]);

        var args = new List<string>
        {
            "--server", "127.0.0.1",
            "--port", route.Port(server).ToString(CultureInfo.InvariantCulture),
            "--ehlo", "client.example",
            "--from", route.Sender(),
            "--to", route.Recipient(),
            "--data", "@" + file,
            "--timeout", "30",
        };
        switch (route)
        {
            case Route.MxStartTls or Route.SubmissionStartTlsAuth:
                args.Add("--tls");
                break;
            case Route.SubmissionsImplicitTlsAuth:
                args.Add("--tls-on-connect");
                break;
        }
        if (mechanism is not null)
        {
            args.AddRange(["--auth", mechanism, "--auth-user", RouteFacts.Alice, "--auth-password", TestServer.AlicePassword]);
        }

        var run = await Peers.RunAsync("swaks", args);

        Assert.True(run.ExitCode == 0, run.All);
        // The transcript shows the client dot-stuffed (RFC 5321 §4.5.2), so the server had something to undo.
        Assert.Contains("..leading dot", run.All, StringComparison.Ordinal);
        Assert.Contains("...two dots", run.All, StringComparison.Ordinal);
        if (route.UsesTls())
        {
            Assert.Contains("TLS started", run.All, StringComparison.Ordinal);
        }
        if (mechanism is not null)
        {
            Assert.Contains($"AUTH {mechanism}", run.All, StringComparison.Ordinal);
            Assert.Contains(server.LogLines, l => l.Contains($"user={RouteFacts.Alice}", StringComparison.Ordinal)
                && l.Contains($"mechanism={mechanism}", StringComparison.Ordinal));
        }
        await TestMessage.AssertArrivedUnchangedAsync(server, route, message);
    }
}
