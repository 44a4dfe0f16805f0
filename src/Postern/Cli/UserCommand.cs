using Postern.Server.Accounts;

using Postern.Invocation;
using Postern.Server.Storage;

namespace Postern.Cli;

/// <summary>`postern user add|del|list|passwd` on the passwd file (SPEC §4); the running server re-reads it.</summary>
public static class UserCommand
{
    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr, TextReader stdin)
    {
        a.Allow("--password-stdin", "--json");
        var (options, _) = CommandLine.LoadOptions(a, actAsDataOwner: true);
        var path = options.ResolvePath(options.Accounts.PasswdFile);
        var action = a.Positional.ElementAtOrDefault(0) ?? throw new UsageException("user add|del|list|passwd ADDRESS");
        if (action == "list")
        {
            var users = File.Exists(path) ? PasswdFile.Load(path).Keys.Order(StringComparer.Ordinal).ToList() : [];
            if (a.Json)
            {
                stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(users));
            }
            else
            {
                foreach (var u in users)
                {
                    stdout.WriteLine(u);
                }
            }
            return ExitCode.Ok;
        }
        var address = a.Positional.ElementAtOrDefault(1) ?? throw new UsageException($"user {action} ADDRESS");
        var invalid = PasswdFile.Validate(address, out var normalized);
        if (invalid is not null)
        {
            throw new UsageException(invalid);
        }
        var domain = normalized[(normalized.LastIndexOf('@') + 1)..];
        var exists = File.Exists(path) && PasswdFile.Load(path).ContainsKey(normalized);
        Directory.CreateDirectory(options.DataDirectory);
        switch (action)
        {
            case "add" or "passwd":
                if (action == "add" && exists)
                {
                    stderr.WriteLine($"postern: {normalized} already exists (use `user passwd` to change the password)");
                    return ExitCode.Problem;
                }
                if (action == "passwd" && !exists)
                {
                    stderr.WriteLine($"postern: no such user {normalized}");
                    return ExitCode.Problem;
                }
                if (!options.Domains.Contains(domain, StringComparer.OrdinalIgnoreCase))
                {
                    stderr.WriteLine($"postern: {domain} is not one of Domains ({string.Join(", ", options.Domains)})");
                    return ExitCode.Problem;
                }
                var password = ReadPassword(a, stdin, stderr);
                if (!TryUpdate(path, normalized, PasswordHasher.Hash(password), stderr))
                {
                    return ExitCode.Problem;
                }
                stdout.WriteLine(action == "add" ? $"added {normalized}" : $"password changed for {normalized}");
                return ExitCode.Ok;
            case "del":
                if (!exists)
                {
                    stderr.WriteLine($"postern: no such user {normalized}");
                    return ExitCode.Problem;
                }
                if (!TryUpdate(path, normalized, null, stderr))
                {
                    return ExitCode.Problem;
                }
                stdout.WriteLine($"deleted {normalized} (its mailbox is kept)");
                return ExitCode.Ok;
            default:
                throw new UsageException($"unknown action 'user {action}'");
        }
    }

    /// <summary>Rewrites the passwd file; a failure (such as a group that cannot be kept for Dovecot) is one line, the file unchanged.</summary>
    private static bool TryUpdate(string path, string address, string? hash, TextWriter stderr)
    {
        try
        {
            PasswdFile.Update(path, address, hash, Durability.Instance);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"postern: {e.Message}");
            return false;
        }
    }

    private static string ReadPassword(Arguments a, TextReader stdin, TextWriter stderr)
    {
        string? password;
        if (a.Has("--password-stdin") || Console.IsInputRedirected)
        {
            password = stdin.ReadLine();
        }
        else
        {
            stderr.Write("Password: ");
            password = ReadHidden();
            stderr.Write("Again: ");
            if (ReadHidden() != password)
            {
                throw new UsageException("the passwords differ");
            }
        }
        if (string.IsNullOrEmpty(password))
        {
            throw new UsageException("empty password");
        }
        if (password.Length < 8)
        {
            throw new UsageException("password too short (at least 8 characters)");
        }
        return password;
    }

    private static string ReadHidden()
    {
        var chars = new List<char>();
        while (true)
        {
            var k = Console.ReadKey(intercept: true);
            if (k.Key == ConsoleKey.Enter)
            {
                Console.Error.WriteLine();
                return new string(chars.ToArray());
            }
            if (k.Key == ConsoleKey.Backspace && chars.Count > 0)
            {
                chars.RemoveAt(chars.Count - 1);
            }
            else if (!char.IsControl(k.KeyChar))
            {
                chars.Add(k.KeyChar);
            }
        }
    }
}
