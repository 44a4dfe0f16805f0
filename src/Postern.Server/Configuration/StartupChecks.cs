using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.Server.Listening;
using Postern.Server.Storage;

namespace Postern.Server.Configuration;

/// <summary>
/// What `serve` meets at start beyond the values themselves: files the server's user must read,
/// the data directory it must write, the certificate and its key, the listening endpoints. `postern
/// config check` runs the same checks, so an OK from it means `serve` starts. Each problem names its
/// key and says why in plain words; all are returned, not the first.
/// </summary>
public static class StartupChecks
{
    /// <summary>Every problem found for a server that would run as <paramref name="runAs"/>; with <paramref name="endpoints"/>, each listener's endpoint is bound (and closed again).</summary>
    /// <remarks>
    /// <paramref name="configFile"/> (null for --dev alone) must be readable by that user too: a reload
    /// and the aliases re-read it after the switch. A server that would run as root is refused unless
    /// <c>User</c> says "root" or <paramref name="allowRoot"/> (--dev, a trial on one's own machine).
    /// </remarks>
    public static List<string> Run(PosternOptions o, UnixUser runAs, bool endpoints, string? configFile = null, bool allowRoot = false)
    {
        var errors = new List<string>();
        if (runAs.IsRoot && !allowRoot && o.User != "root")
        {
            var why = Directory.Exists(o.DataDirectory) ? $"the data directory {o.DataDirectory} belongs to root" : $"the data directory {o.DataDirectory} does not exist yet and User is not set";
            errors.Add($"User: the server would run as root ({why}); give it a user of its own (adduser --system --group postern; then set \"User\": \"postern\", or chown -R postern: {o.DataDirectory}), or set \"User\": \"root\" to insist");
        }
        if (configFile is not null)
        {
            CheckReadable(o, runAs, "--config", configFile, mayBeMissing: false, errors, hint: $" (a reload and the aliases read it again as {runAs.Name}: chgrp {runAs.Name} {configFile} && chmod 0640 {configFile})");
        }
        CheckDataDirectory(o, runAs, errors);
        CheckTls(o, runAs, errors);
        CheckReadable(o, runAs, "Accounts.PasswdFile", o.ResolvePath(o.Accounts.PasswdFile), mayBeMissing: true, errors);
        if (o.Relay.Smarthost is { PasswordFile: { Length: > 0 } pw })
        {
            CheckReadable(o, runAs, "Relay.Smarthost.PasswordFile", o.ResolvePath(pw), mayBeMissing: false, errors);
        }
        var dkim = Path.Combine(o.DataDirectory, Postern.MailAuth.Dkim.DkimKeyStore.FolderName);
        if (Directory.Exists(dkim))
        {
            try
            {
                Postern.MailAuth.Dkim.DkimKeyStore.Load(dkim);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                errors.Add($"DataDirectory: a DKIM key in {dkim} cannot be used: {e.Message}");
            }
        }
        if (endpoints)
        {
            CheckEndpoints(o, errors);
        }
        return errors;
    }

    private static void CheckDataDirectory(PosternOptions o, UnixUser runAs, List<string> errors)
    {
        if (Directory.Exists(o.DataDirectory))
        {
            if (FileStatus.Of(o.DataDirectory) is { } s && s.Uid != runAs.Uid)
            {
                // Run as root, serve would become runAs (User) in a directory of somebody else's.
                errors.Add($"User: the data directory {o.DataDirectory} belongs to {UnixUser.ById(s.Uid)?.Name ?? $"uid {s.Uid}"}, not to {runAs.Name} (give it over with: chown -R {runAs.Name}: {o.DataDirectory})");
            }
            else if (runAs.CannotWriteDirectory(o.DataDirectory) is { } why)
            {
                errors.Add($"DataDirectory: the server's user cannot write there: {why}");
            }
            return;
        }
        // Not made yet: root makes it for the user; anyone else needs the right to make it.
        var parent = Path.GetDirectoryName(Path.GetFullPath(o.DataDirectory));
        while (parent is not null && !Directory.Exists(parent))
        {
            parent = Path.GetDirectoryName(parent);
        }
        if (!UnixUser.Current.IsRoot && parent is not null && UnixUser.Current.CannotWriteDirectory(parent) is { } cannot)
        {
            errors.Add($"DataDirectory: {o.DataDirectory} does not exist and cannot be made: {cannot}");
        }
    }

    private static void CheckTls(PosternOptions o, UnixUser runAs, List<string> errors)
    {
        if (string.IsNullOrEmpty(o.Tls.CertificatePath) || string.IsNullOrEmpty(o.Tls.KeyPath))
        {
            return; // generated (--dev), or already an error of ConfigurationLoader.Validate
        }
        var cert = o.ResolvePath(o.Tls.CertificatePath);
        var key = o.ResolvePath(o.Tls.KeyPath);
        var certOk = CheckReadable(o, runAs, "Tls.CertificatePath", cert, mayBeMissing: false, errors);
        var keyOk = CheckReadable(o, runAs, "Tls.KeyPath", key, mayBeMissing: false, errors);
        if (!certOk || !keyOk)
        {
            return;
        }
        string certPem, keyPem;
        try
        {
            certPem = File.ReadAllText(cert);
            keyPem = File.ReadAllText(key);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add($"Tls: cannot read the certificate or key: {e.Message}");
            return;
        }
        X509Certificate2 leaf;
        try
        {
            leaf = X509Certificate2.CreateFromPem(certPem);
        }
        catch (CryptographicException)
        {
            errors.Add($"Tls.CertificatePath: {cert} holds no PEM certificate (a file starting with -----BEGIN CERTIFICATE-----)");
            return;
        }
        using (leaf)
        {
            if (!HasPrivateKey(keyPem))
            {
                errors.Add($"Tls.KeyPath: {key} holds no PEM private key (-----BEGIN PRIVATE KEY----- or an RSA/EC key)");
                return;
            }
            try
            {
                using var pair = X509Certificate2.CreateFromPem(certPem, keyPem);
            }
            catch (CryptographicException)
            {
                errors.Add($"Tls.KeyPath: the key in {key} does not belong to the certificate in {cert} (subject {leaf.Subject}); give the key the certificate was issued for");
            }
        }
    }

    private static bool HasPrivateKey(string pem)
    {
        foreach (var make in new Func<AsymmetricAlgorithm>[] { RSA.Create, ECDsa.Create })
        {
            using var alg = make();
            try
            {
                alg.ImportFromPem(pem);
                return true;
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException)
            {
                // Not this kind of key.
            }
        }
        return false;
    }

    /// <summary>Whether the file exists and the server's user may read it; false (and an error) otherwise.</summary>
    private static bool CheckReadable(PosternOptions o, UnixUser runAs, string key, string path, bool mayBeMissing, List<string> errors, string hint = "")
    {
        if (!File.Exists(path))
        {
            if (!mayBeMissing)
            {
                errors.Add($"{key}: file not found: {path}");
            }
            return false;
        }
        if (runAs.CannotRead(path) is { } why)
        {
            errors.Add($"{key}: the server's user cannot read it: {why}{hint}");
            return false;
        }
        return true;
    }

    private static void CheckEndpoints(PosternOptions o, List<string> errors)
    {
        for (var i = 0; i < o.Listeners.Count; i++)
        {
            try
            {
                ListenerSocket.Bind(o.Listeners[i], i).Dispose();
            }
            catch (EndpointInUseException e)
            {
                errors.Add(e.Message);
            }
            catch (UnauthorizedAccessException)
            {
                // A port below 1024, tried by an ordinary user: systemd's unit gives serve the capability
                // this check does not have, so there is nothing to conclude here (docs/configuration.md).
            }
            catch (SocketException e)
            {
                errors.Add($"Listeners[{i}].Endpoint: cannot listen on {o.Listeners[i].Endpoint}: {e.Message}");
            }
        }
    }
}
