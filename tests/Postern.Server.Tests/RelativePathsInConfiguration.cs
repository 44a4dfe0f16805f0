using Postern.Server.Configuration;

namespace Postern.Server.Tests;

/// <summary>
/// SPEC §2: relative paths are relative to DataDirectory; DataDirectory itself, when relative, to the
/// folder of the configuration file (so a service does not depend on its working directory).
/// </summary>
public sealed class RelativePathsInConfiguration
{
    private const string Base = """
        {
          "Hostname": "mail.example.com",
          "DataDirectory": "DATA",
          "Domains": ["example.com"],
          "Listeners": [ { "Endpoint": "127.0.0.1:2525" } ],
          "Tls": TLS
        }
        """;

    private static string Config(string dataDirectory, string tls = """{ "Generate": true }""") =>
        RepositoryFiles.WriteConfig(Base.Replace("DATA", dataDirectory, StringComparison.Ordinal).Replace("TLS", tls, StringComparison.Ordinal));

    [Fact]
    public void ARelativeDataDirectoryIsBesideTheConfigurationFile()
    {
        var file = Config("state/postern");
        var o = ConfigurationLoader.Load(file, dev: false, RepositoryFiles.NoEnvironment);
        Assert.Equal(Path.Combine(Path.GetDirectoryName(file)!, "state", "postern"), o.DataDirectory);
    }

    [Fact]
    public void AnAbsoluteDataDirectoryIsKept()
    {
        var data = Path.Combine(Path.GetTempPath(), "postern-config-tests", Guid.NewGuid().ToString("N"));
        var o = ConfigurationLoader.Load(Config(data), dev: false, RepositoryFiles.NoEnvironment);
        Assert.Equal(data, o.DataDirectory);
    }

    [Fact]
    public void CertificatePathsAreFoundInTheDataDirectory()
    {
        var file = Config("data", """{ "CertificatePath": "tls/cert.pem", "KeyPath": "tls/key.pem" }""");
        var data = Path.Combine(Path.GetDirectoryName(file)!, "data");

        // Beside the configuration file is the wrong place: the error names the path it looked at.
        Directory.CreateDirectory(Path.Combine(Path.GetDirectoryName(file)!, "tls"));
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(file)!, "tls", "cert.pem"), "x");
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(file)!, "tls", "key.pem"), "x");
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(file, dev: false, RepositoryFiles.NoEnvironment));
        Assert.Contains($"Tls.CertificatePath: file not found: {Path.Combine(data, "tls", "cert.pem")}", e.Message, StringComparison.Ordinal);

        Directory.CreateDirectory(Path.Combine(data, "tls"));
        File.WriteAllText(Path.Combine(data, "tls", "cert.pem"), "x");
        File.WriteAllText(Path.Combine(data, "tls", "key.pem"), "x");
        var o = ConfigurationLoader.Load(file, dev: false, RepositoryFiles.NoEnvironment);
        Assert.Equal(Path.Combine(data, "tls", "cert.pem"), o.ResolvePath(o.Tls.CertificatePath!));
    }

    [Fact]
    public void ThePasswdFileIsInTheDataDirectoryUnlessAbsolute()
    {
        var o = ConfigurationLoader.Load(Config("data"), dev: false, RepositoryFiles.NoEnvironment);
        Assert.Equal(Path.Combine(o.DataDirectory, "passwd"), o.ResolvePath(o.Accounts.PasswdFile));
        Assert.Equal("/etc/postern/passwd", o.ResolvePath("/etc/postern/passwd"));
    }

    [Fact]
    public void AListenerWithoutANameIsNamedAfterItsRole()
    {
        var o = ConfigurationLoader.Load(RepositoryFiles.WriteConfig("""
            {
              "Hostname": "mail.example.com", "DataDirectory": "data", "Domains": ["example.com"],
              "Listeners": [ { "Endpoint": "127.0.0.1:2525" }, { "Endpoint": "127.0.0.1:2465", "Role": "submissions" } ],
              "Tls": { "Generate": true }
            }
            """), dev: false, RepositoryFiles.NoEnvironment);
        Assert.Equal(["mx", "submissions"], o.Listeners.Select(l => l.Name));
        Assert.Equal(ListenerRole.Mx, o.Listeners[0].Role);
    }
}
