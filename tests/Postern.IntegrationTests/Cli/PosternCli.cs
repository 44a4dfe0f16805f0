using System.Text.Json;
using Postern.Cli;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Cli;

/// <summary>What one run of the `postern` command line printed and returned.</summary>
public sealed record CliResult(int ExitCode, string Out, string Err)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Out}\nstderr:\n{Err}";
}

/// <summary>
/// Runs the `postern` command line in this process (<see cref="CommandLine.RunAsync"/>), with its
/// own configuration file and data directory.
/// </summary>
public sealed class PosternCli : IDisposable
{
    private PosternCli(string folder, string configFile, string dataDirectory)
    {
        Folder = folder;
        ConfigFile = configFile;
        DataDirectory = dataDirectory;
    }

    /// <summary>The temp folder holding the configuration file.</summary>
    public string Folder { get; }
    public string ConfigFile { get; }
    public string DataDirectory { get; }
    public string PasswdFile => Path.Combine(DataDirectory, "passwd");

    /// <summary>
    /// A configuration for the domains example.test and localhost; its data directory is
    /// <paramref name="dataDirectory"/> (for example a running TestServer's) or DATA beside the file.
    /// </summary>
    public static PosternCli WithConfig(string? dataDirectory = null, Action<Dictionary<string, object>>? change = null)
    {
        var folder = TestServer.NewDataDir();
        var data = dataDirectory ?? Path.Combine(folder, "data");
        var config = new Dictionary<string, object>
        {
            ["Hostname"] = "mail.example.test",
            ["DataDirectory"] = data,
            ["Domains"] = new[] { "example.test", "localhost" },
            ["Listeners"] = new[] { new Dictionary<string, string> { ["Endpoint"] = "127.0.0.1:0" } },
            ["Tls"] = new Dictionary<string, bool> { ["Generate"] = true },
        };
        if (dataDirectory is null && Environment.UserName == "root")
        {
            // A data directory of root's beside the file (the tests run as root): say so, or serve and config check refuse root.
            config["User"] = "root";
        }
        change?.Invoke(config);
        var file = Path.Combine(folder, "postern.json");
        File.WriteAllText(file, JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
        return new PosternCli(folder, file, data);
    }

    /// <summary>Runs `postern ARGS --config FILE`, with <paramref name="stdin"/> as standard input.</summary>
    public Task<CliResult> RunWithInputAsync(string stdin, params string[] args) => RunRawAsync(stdin, [.. args, "--config", ConfigFile]);

    /// <summary>Runs `postern ARGS --config FILE` with nothing on standard input.</summary>
    public Task<CliResult> RunAsync(params string[] args) => RunWithInputAsync("", args);

    /// <summary>Runs `postern ARGS` exactly as given.</summary>
    public static async Task<CliResult> RunRawAsync(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await CommandLine.RunAsync(args, stdout, stderr, new StringReader(stdin));
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
