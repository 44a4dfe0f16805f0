using Postern.Cli;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Cli;

/// <summary>SPEC §1 `postern send`: one test message, the whole dialogue printed, the password never shown.</summary>
public sealed class SendCommandDialogue
{
    private static async Task<(int Code, string Out, string Err)> SendAsync(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await CommandLine.RunAsync(["send", .. args], stdout, stderr, new StringReader(stdin));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task SendsOverSubmissionAndPrintsTheDialogue()
    {
        await using var server = await TestServer.StartAsync();
        var (code, output, _) = await SendAsync(TestServer.AlicePassword + "\n",
            "--server", $"127.0.0.1:{server.SubmissionPort}", "--tls", "starttls",
            "--user", "alice@example.test", "--password-stdin",
            "--from", "alice@example.test", "--to", "bob@example.test", "--subject", "from the cli");
        Assert.Equal(0, code);
        Assert.Contains("C: STARTTLS", output);
        Assert.Contains("C: MAIL FROM:<alice@example.test>", output);
        Assert.Contains("S: 250 2.0.0 OK queued as", output);
        Assert.DoesNotContain(TestServer.AlicePassword, output);
        Assert.Contains("Subject: from the cli", System.Text.Encoding.UTF8.GetString((await server.WaitForDeliveryAsync("bob@example.test"))[0]));
    }

    [Fact]
    public async Task WrongPasswordIsAProblemWithTheReplyShown()
    {
        await using var server = await TestServer.StartAsync();
        var (code, output, err) = await SendAsync("not-the-password\n",
            "--server", $"127.0.0.1:{server.SubmissionsPort}", "--tls", "implicit",
            "--user", "alice@example.test", "--password-stdin",
            "--from", "alice@example.test", "--to", "bob@example.test");
        Assert.Equal(1, code);
        Assert.Contains("535 5.7.8", output + err);
        Assert.DoesNotContain("not-the-password", output + err);
    }

    [Fact]
    public async Task RelayRefusalIsShown()
    {
        await using var server = await TestServer.StartAsync();
        var (code, output, err) = await SendAsync("", "--server", $"127.0.0.1:{server.MxPort}", "--tls", "none",
            "--from", "x@remote.example", "--to", "y@elsewhere.example");
        Assert.Equal(1, code);
        Assert.Contains("554 5.7.1", output + err);
    }

    [Fact]
    public async Task PasswordOnlyFromStandardInput()
    {
        var (code, _, err) = await SendAsync("", "--server", "127.0.0.1:1", "--user", "u@example.test", "--from", "a@b.example", "--to", "c@d.example");
        Assert.Equal(2, code);
        Assert.Contains("--password-stdin", err);
    }
}
