using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.RealClients;

/// <summary>Python's smtplib, the client behind countless scripts and cron jobs, on every listener.</summary>
public sealed class SmtplibSendsOnEveryListener
{
    // argv: mode (plain|starttls|implicit) port mechanism (none|PLAIN|LOGIN) user password from to file
    private const string Script = """
        import smtplib, ssl, sys
        mode, port, mech, user, password, sender, rcpt, path = sys.argv[1:9]
        data = open(path, 'rb').read()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if mode == 'implicit':
            s = smtplib.SMTP_SSL('127.0.0.1', int(port), local_hostname='client.example', context=ctx, timeout=30)
        else:
            s = smtplib.SMTP('127.0.0.1', int(port), local_hostname='client.example', timeout=30)
        s.set_debuglevel(1)
        s.ehlo()
        if mode == 'starttls':
            s.starttls(context=ctx)
            s.ehlo()
        if not s.has_extn('8bitmime'):
            sys.exit('server did not offer 8BITMIME')
        if mech != 'none':
            s.user, s.password = user, password
            # smtplib sends the first response with the AUTH command (RFC 4954 initial response).
            s.auth(mech, getattr(s, 'auth_' + mech.lower()))
        refused = s.sendmail(sender, [rcpt], data, mail_options=['BODY=8BITMIME'])
        if refused:
            sys.exit('refused: %r' % refused)
        s.quit()
        print('sent')
        """;

    [Theory]
    [InlineData(Route.MxPlain, "none")]
    [InlineData(Route.MxStartTls, "none")]
    [InlineData(Route.SubmissionStartTlsAuth, "PLAIN")]
    [InlineData(Route.SubmissionsImplicitTlsAuth, "LOGIN")]
    public async Task DeliversUnchanged(Route route, string mechanism)
    {
        await using var server = await TestServer.StartAsync();
        var message = TestMessage.Raw("smtplib", route);

        var run = await SendAsync(server, route, mechanism, message);

        Assert.True(run.ExitCode == 0, run.All);
        // The transcript shows the client dot-stuffed (RFC 5321 §4.5.2), so the server had something to undo.
        Assert.Contains("..leading dot", run.All, StringComparison.Ordinal);
        Assert.Contains("...two dots", run.All, StringComparison.Ordinal);
        Assert.Contains("BODY=8BITMIME", run.All, StringComparison.Ordinal);
        if (mechanism != "none")
        {
            Assert.Contains($"AUTH {mechanism} ", run.All, StringComparison.Ordinal);
            Assert.Contains(server.LogLines, l => l.Contains($"user={RouteFacts.Alice}", StringComparison.Ordinal)
                && l.Contains($"mechanism={mechanism}", StringComparison.Ordinal));
        }
        await TestMessage.AssertArrivedUnchangedAsync(server, route, message);
    }

    /// <summary>Sends <paramref name="message"/> with smtplib along <paramref name="route"/>; "none" means no AUTH.</summary>
    internal static async Task<Peers.Result> SendAsync(TestServer server, Route route, string mechanism, byte[] message)
    {
        var file = Path.Combine(server.DataDir, $"smtplib-{Guid.NewGuid():N}.eml");
        await File.WriteAllBytesAsync(file, message);
        var mode = route switch
        {
            Route.MxPlain => "plain",
            Route.SubmissionsImplicitTlsAuth => "implicit",
            _ => "starttls",
        };
        return await Peers.RunAsync("python3",
        [
            "-c", Script, mode, route.Port(server).ToString(System.Globalization.CultureInfo.InvariantCulture), mechanism,
            RouteFacts.Alice, TestServer.AlicePassword, route.Sender(), route.Recipient(), file,
        ]);
    }
}
