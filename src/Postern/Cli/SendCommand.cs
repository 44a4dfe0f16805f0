using System.Globalization;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern send`: sends one test message and prints the whole SMTP dialogue, like swaks (SPEC §1).
/// The password comes from standard input only, and MailKit's protocol log hides it.
/// </summary>
public static class SendCommand
{
    public static async Task<int> RunAsync(Arguments a, TextWriter stdout, TextWriter stderr, TextReader stdin)
    {
        a.Allow("--server", "--tls", "--user", "--password-stdin", "--from", "--to", "--subject", "--body-file");
        var server = a.Value("--server") ?? throw new UsageException("send needs --server HOST[:PORT]");
        var from = a.Value("--from") ?? throw new UsageException("send needs --from ADDRESS");
        var to = a.Value("--to") ?? throw new UsageException("send needs --to ADDRESS");
        var tls = a.Value("--tls") ?? "starttls";
        var (host, port) = SplitServer(server, tls);
        var socketOptions = tls switch
        {
            "starttls" => SecureSocketOptions.StartTls,
            "implicit" => SecureSocketOptions.SslOnConnect,
            "none" => SecureSocketOptions.None,
            _ => throw new UsageException("--tls must be starttls, implicit or none"),
        };
        var user = a.Value("--user");
        string? password = null;
        if (user is not null)
        {
            if (!a.Has("--password-stdin"))
            {
                throw new UsageException("--user needs --password-stdin (a password is never given on the command line)");
            }
            password = stdin.ReadLine() ?? throw new UsageException("no password on standard input");
        }
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = a.Value("--subject") ?? $"Test from postern send, {DateTimeOffset.Now.ToString("R", CultureInfo.InvariantCulture)}";
        message.Body = new TextPart("plain")
        {
            Text = a.Value("--body-file") is { } file ? File.ReadAllText(file) : "This is a test message sent by `postern send`.\n",
        };
        using var log = new MemoryStream();
        using var client = new SmtpClient(new ProtocolLogger(log, leaveOpen: true) { RedactSecrets = true });
        // A test tool talks to servers with self-signed certificates too; say so instead of failing.
        client.ServerCertificateValidationCallback = (_, _, _, errors) =>
        {
            if (errors != System.Net.Security.SslPolicyErrors.None)
            {
                stderr.WriteLine($"postern: note: the server's certificate does not verify ({errors})");
            }
            return true;
        };
        var ok = false;
        try
        {
            await client.ConnectAsync(host, port, socketOptions);
            if (user is not null)
            {
                await client.AuthenticateAsync(user, password!);
            }
            var reply = await client.SendAsync(message);
            await client.DisconnectAsync(true);
            ok = true;
            stdout.Write(System.Text.Encoding.UTF8.GetString(log.ToArray()));
            stdout.WriteLine($"sent: {reply}");
        }
        catch (Exception e) when (e is SmtpCommandException or SmtpProtocolException or AuthenticationException or IOException or System.Net.Sockets.SocketException or SslHandshakeException or NotSupportedException)
        {
            stdout.Write(System.Text.Encoding.UTF8.GetString(log.ToArray()));
            stderr.WriteLine($"postern: send failed: {e.Message}");
        }
        return ok ? ExitCode.Ok : ExitCode.Problem;
    }

    private static (string Host, int Port) SplitServer(string server, string tls)
    {
        var defaultPort = tls switch { "implicit" => 465, "none" => 25, _ => 587 };
        var colon = server.LastIndexOf(':');
        if (colon > 0 && !server.EndsWith(']') && int.TryParse(server[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return (server[..colon].Trim('[', ']'), port);
        }
        return (server.Trim('[', ']'), defaultPort);
    }
}
