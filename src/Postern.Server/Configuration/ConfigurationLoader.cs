using System.Collections;
using System.Net;
using Microsoft.Extensions.Configuration;

namespace Postern.Server.Configuration;

/// <summary>A configuration that cannot be used; the message names the key and why (exit code 2).</summary>
public sealed class ConfigurationException(string message) : Exception(message);

/// <summary>
/// Builds <see cref="PosternOptions"/> from, in order: the embedded --dev defaults, the JSON file,
/// and POSTERN_ environment variables (SPEC §2), then validates them.
/// </summary>
public static class ConfigurationLoader
{
    public const string EnvironmentPrefix = "POSTERN_";

    /// <summary>Finds the configuration file: the given one, ./postern.json, then /etc/postern/postern.json.</summary>
    public static string? FindConfigFile(string? explicitPath)
    {
        if (explicitPath is not null)
        {
            return File.Exists(explicitPath)
                ? Path.GetFullPath(explicitPath)
                : throw new ConfigurationException($"--config: file not found: {explicitPath}");
        }
        foreach (var candidate in new[] { "postern.json", "/etc/postern/postern.json" })
        {
            if (File.Exists(candidate))
            {
                return Path.GetFullPath(candidate);
            }
        }
        return null;
    }

    /// <summary>The --dev defaults (SPEC §1): nothing to write by hand, and no trusted network.</summary>
    public static Dictionary<string, string?> DevDefaults(IDictionary environment)
    {
        var data = environment["POSTERN_DATA"] as string;
        if (string.IsNullOrEmpty(data))
        {
            data = Path.Combine(Directory.GetCurrentDirectory(), "postern-data");
        }
        return new Dictionary<string, string?>
        {
            ["Hostname"] = "localhost",
            ["DataDirectory"] = Path.GetFullPath(data),
            ["Domains:0"] = "localhost",
            ["Domains:1"] = "example.test",
            ["Listeners:0:Name"] = "mx",
            ["Listeners:0:Endpoint"] = "127.0.0.1:2525",
            ["Listeners:0:Role"] = "mx",
            ["Listeners:1:Name"] = "submission",
            ["Listeners:1:Endpoint"] = "127.0.0.1:2587",
            ["Listeners:1:Role"] = "submission",
            ["Listeners:2:Name"] = "submissions",
            ["Listeners:2:Endpoint"] = "127.0.0.1:2465",
            ["Listeners:2:Role"] = "submissions",
            ["Tls:Generate"] = "true",
            // Trying it out should not wait: the greeting pause is off (pregreet cannot be seen then).
            ["Triage:GreetingPause"] = "00:00:00",
            // Nor on DNS: mail authentication would ask the system resolvers about every sender.
            ["MailAuth:Enabled"] = "false",
        };
    }

    /// <summary>Loads and validates. Throws <see cref="ConfigurationException"/> naming the key at fault.</summary>
    public static PosternOptions Load(string? configFile, bool dev, IDictionary? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        // A relative file name means the current directory (the JSON provider would use the binary's folder).
        configFile = configFile is null ? null : Path.GetFullPath(configFile);
        var builder = new ConfigurationBuilder();
        if (dev)
        {
            builder.AddInMemoryCollection(DevDefaults(environment));
        }
        if (configFile is not null)
        {
            builder.AddJsonFile(configFile, optional: false, reloadOnChange: false);
        }
        builder.AddInMemoryCollection(EnvironmentOverrides(environment));
        IConfigurationRoot root;
        try
        {
            root = builder.Build();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or IOException)
        {
            // The JSON parser's own message says where (its line numbers count from 0).
            var json = e.InnerException;
            while (json is not null and not System.Text.Json.JsonException)
            {
                json = json.InnerException;
            }
            var where = json is System.Text.Json.JsonException { LineNumber: { } line, BytePositionInLine: { } col }
                ? $" (line {line + 1}, position {col + 1}: {json.Message.Split(" Path:")[0].Split(" LineNumber:")[0]})"
                : e.InnerException is null ? "" : $" ({e.InnerException.Message})";
            throw new ConfigurationException($"{configFile}: {e.Message}{where}");
        }
        // Every unknown key and badly typed value at once, in the docs' words; then the binder (which stops at the first).
        var shape = ConfigurationShape.Check(root);
        if (shape.Count > 0)
        {
            throw new ConfigurationException(string.Join(Environment.NewLine, shape));
        }
        var options = new PosternOptions();
        try
        {
            root.Bind(options, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new ConfigurationException(DescribeBindError(e));
        }
        if (!string.IsNullOrEmpty(options.DataDirectory))
        {
            var baseDir = configFile is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(configFile)!;
            options.DataDirectory = Path.GetFullPath(options.DataDirectory, baseDir);
        }
        foreach (var l in options.Listeners)
        {
            if (string.IsNullOrEmpty(l.Name))
            {
                l.Name = l.Role.ToString().ToLowerInvariant();
            }
        }
        var errors = Validate(options);
        if (errors.Count > 0)
        {
            throw new ConfigurationException(string.Join(Environment.NewLine, errors));
        }
        return options;
    }

    /// <summary>POSTERN_A__B=v becomes A:B=v (SPEC §2). POSTERN_DATA is the --dev data folder, not a key.</summary>
    public static Dictionary<string, string?> EnvironmentOverrides(IDictionary environment)
    {
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry e in environment)
        {
            var name = (string)e.Key;
            if (name.StartsWith(EnvironmentPrefix, StringComparison.Ordinal) && name != "POSTERN_DATA")
            {
                result[name[EnvironmentPrefix.Length..].Replace("__", ":", StringComparison.Ordinal)] = e.Value as string;
            }
        }
        return result;
    }

    private static bool IsWildcard(IPAddress a) => a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any);

    private static string DescribeBindError(InvalidOperationException e)
    {
        // The binder names the key ('Limits:MaxMessageSize' or 'Listeners:0:Role'); say it the way
        // the docs do (Limits.MaxMessageSize, Listeners[0].Role), leaving the value as it was.
        var message = System.Text.RegularExpressions.Regex.Replace(e.Message, @"at '([^']*)'", m =>
            "at '" + System.Text.RegularExpressions.Regex.Replace(m.Groups[1].Value, @":(\d+)", "[$1]").Replace(':', '.') + "'");
        return e.InnerException is null ? message : $"{message} ({e.InnerException.Message})";
    }

    /// <summary>Every problem found, each naming its key.</summary>
    public static List<string> Validate(PosternOptions o)
    {
        var errors = new List<string>();
        void Check(bool ok, string key, string why)
        {
            if (!ok)
            {
                errors.Add($"{key}: {why}");
            }
        }
        Check(!string.IsNullOrWhiteSpace(o.Hostname), "Hostname", "is required (the name this server uses in its greeting and Received headers)");
        Check(string.IsNullOrEmpty(o.Hostname) || Postern.Protocol.Addresses.AddressParser.IsDomain(o.Hostname, false), "Hostname", $"'{o.Hostname}' is not a valid host name");
        Check(!string.IsNullOrWhiteSpace(o.DataDirectory), "DataDirectory", "is required");
        Check(o.Domains.Count > 0, "Domains", "at least one local domain is required");
        for (var i = 0; i < o.Domains.Count; i++)
        {
            Check(Postern.Protocol.Addresses.AddressParser.IsDomain(o.Domains[i], true), $"Domains[{i}]", $"'{o.Domains[i]}' is not a valid domain");
        }
        Check(o.Listeners.Count > 0, "Listeners", "at least one listener is required");
        var bound = new List<(IPEndPoint Endpoint, int Index)>();
        for (var i = 0; i < o.Listeners.Count; i++)
        {
            var text = o.Listeners[i].Endpoint ?? "";
            // IPv4:port or [IPv6]:port; port 0 asks the system for a free port (tests use it).
            var shaped = System.Text.RegularExpressions.Regex.IsMatch(text, @"^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):[0-9]{1,5}$");
            if (!shaped || !IPEndPoint.TryParse(text, out var ep))
            {
                Check(false, $"Listeners[{i}].Endpoint", $"'{text}' is not IP:port (e.g. 0.0.0.0:25 or [::]:25)");
                continue;
            }
            // Two listeners clash on the same port when the addresses are equal or either is a wildcard.
            var clash = ep.Port == 0 ? null : bound.FirstOrDefault(b => b.Endpoint.Port == ep.Port
                && (b.Endpoint.Address.Equals(ep.Address) || IsWildcard(b.Endpoint.Address) || IsWildcard(ep.Address))).Endpoint;
            Check(clash is null, $"Listeners[{i}].Endpoint", $"'{text}' uses the same port as another listener ({clash})");
            bound.Add((ep, i));
        }
        for (var i = 0; i < o.Listeners.Count; i++)
        {
            var l = o.Listeners[i];
            Check(!l.ProxyProtocol || l.TrustedProxies.Count > 0, $"Listeners[{i}].TrustedProxies", "at least one network is required when ProxyProtocol is true (the proxies allowed to send the PROXY header)");
            for (var j = 0; j < l.TrustedProxies.Count; j++)
            {
                Check(IPNetwork.TryParse(l.TrustedProxies[j], out _), $"Listeners[{i}].TrustedProxies[{j}]", $"'{l.TrustedProxies[j]}' is not a network in CIDR form (e.g. 192.0.2.10/32)");
            }
        }
        if (!string.IsNullOrEmpty(o.Tls.CertificatePath) || !string.IsNullOrEmpty(o.Tls.KeyPath))
        {
            // Files given: both are needed, whether or not Generate is also set.
            Check(!string.IsNullOrEmpty(o.Tls.CertificatePath), "Tls.CertificatePath", "is required when Tls.KeyPath is set");
            Check(!string.IsNullOrEmpty(o.Tls.KeyPath), "Tls.KeyPath", "is required when Tls.CertificatePath is set");
        }
        if (!o.Tls.Generate)
        {
            Check(!string.IsNullOrEmpty(o.Tls.CertificatePath), "Tls.CertificatePath", "is required (or set Tls.Generate for a self-signed certificate)");
            Check(!string.IsNullOrEmpty(o.Tls.KeyPath), "Tls.KeyPath", "is required (or set Tls.Generate for a self-signed certificate)");
            if (!string.IsNullOrEmpty(o.Tls.CertificatePath) && !string.IsNullOrEmpty(o.DataDirectory))
            {
                Check(File.Exists(o.ResolvePath(o.Tls.CertificatePath)), "Tls.CertificatePath", $"file not found: {o.ResolvePath(o.Tls.CertificatePath)}");
            }
            if (!string.IsNullOrEmpty(o.Tls.KeyPath) && !string.IsNullOrEmpty(o.DataDirectory))
            {
                Check(File.Exists(o.ResolvePath(o.Tls.KeyPath)), "Tls.KeyPath", $"file not found: {o.ResolvePath(o.Tls.KeyPath)}");
            }
        }
        Check(o.Tls.ExpiryWarning >= TimeSpan.Zero && o.Tls.ExpiryWarning <= TimeSpan.FromDays(365), "Tls.ExpiryWarning", "must be between 0 and 365 days");
        for (var i = 0; i < o.Relay.TrustedNetworks.Count; i++)
        {
            Check(IPNetwork.TryParse(o.Relay.TrustedNetworks[i], out var trusted), $"Relay.TrustedNetworks[{i}]", $"'{o.Relay.TrustedNetworks[i]}' is not a network in CIDR form (e.g. 192.0.2.0/24)");
            // A trusted network may relay anywhere without AUTH. One that spans the whole address space
            // is an open relay, and so is a handful of halves (0.0.0.0/1 + 128.0.0.0/1): no network
            // of one's own is wider than an IPv4 /8 or an IPv6 /16, so nothing wider is trusted.
            var parsed = IPNetwork.TryParse(o.Relay.TrustedNetworks[i], out _);
            var widest = trusted.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 8 : 16;
            Check(!parsed || trusted.PrefixLength > 0, $"Relay.TrustedNetworks[{i}]",
                $"'{o.Relay.TrustedNetworks[i]}' is every address: anyone could relay through this server (an open relay); list only your own networks, and let your users authenticate");
            Check(!parsed || trusted.PrefixLength == 0 || trusted.PrefixLength >= widest, $"Relay.TrustedNetworks[{i}]",
                $"'{o.Relay.TrustedNetworks[i]}' is wider than /{widest}: more of the Internet than any network of one's own, so nearly anyone could relay (an open relay); list only your own networks, and let your users authenticate");
        }
        if (o.Relay.Smarthost is { } sh)
        {
            Check(!string.IsNullOrWhiteSpace(sh.Host), "Relay.Smarthost.Host", "is required when Relay.Smarthost is set");
            Check(sh.Port is > 0 and < 65536, "Relay.Smarthost.Port", "must be 1-65535");
            Check(sh.Tls is "starttls" or "implicit", "Relay.Smarthost.Tls", "must be starttls or implicit");
            Check(sh.Username is null || !string.IsNullOrEmpty(sh.PasswordFile), "Relay.Smarthost.PasswordFile", "is required when Relay.Smarthost.Username is set");
            Check(sh.PasswordFile is null || sh.Username is not null, "Relay.Smarthost.Username", "is required when Relay.Smarthost.PasswordFile is set");
            if (!string.IsNullOrEmpty(sh.PasswordFile) && !string.IsNullOrEmpty(o.DataDirectory))
            {
                Check(File.Exists(o.ResolvePath(sh.PasswordFile)), "Relay.Smarthost.PasswordFile", $"file not found: {o.ResolvePath(sh.PasswordFile)}");
            }
        }
        for (var i = 0; i < o.Dns.Servers.Count; i++)
        {
            Check(IPAddress.TryParse(o.Dns.Servers[i], out _) || IPEndPoint.TryParse(o.Dns.Servers[i], out _), $"Dns.Servers[{i}]", $"'{o.Dns.Servers[i]}' is not an IP address");
        }
        Check(o.Dns.Timeout > TimeSpan.Zero && o.Dns.Timeout <= TimeSpan.FromSeconds(60), "Dns.Timeout", "must be between 0 and 60 seconds");
        Check(o.Delivery.RemotePort is > 0 and < 65536, "Delivery.RemotePort", "must be 1-65535");
        Check(o.Delivery.MaxQueueLifetime > TimeSpan.Zero, "Delivery.MaxQueueLifetime", "must be positive");
        Check(o.Delivery.DelayWarningAfter > TimeSpan.Zero, "Delivery.DelayWarningAfter", "must be positive");
        Check(o.Delivery.LocalConcurrency is > 0 and <= 256, "Delivery.LocalConcurrency", "must be 1-256");
        Check(o.Delivery.RemoteConcurrency is > 0 and <= 1000, "Delivery.RemoteConcurrency", "must be 1-1000");
        Check(o.Delivery.DestinationConcurrency is > 0 and <= 1000, "Delivery.DestinationConcurrency", "must be 1-1000");
        Check(o.Delivery.RetryInitialDelay > TimeSpan.Zero, "Delivery.RetryInitialDelay", "must be positive");
        Check(o.Delivery.RetryMaxDelay >= o.Delivery.RetryInitialDelay, "Delivery.RetryMaxDelay", "must be at least Delivery.RetryInitialDelay");
        var binds = o.Delivery.BindAddresses.Select(a => System.Net.IPAddress.TryParse(a, out var ip) ? ip : null).ToList();
        Check(binds.All(b => b is not null), "Delivery.BindAddresses", "must be IP addresses");
        Check(binds.GroupBy(b => b?.AddressFamily).All(g => g.Count() == 1), "Delivery.BindAddresses", "at most one IPv4 and one IPv6 address");
        Check(o.Delivery.Lmtp is null || Delivery.LmtpDelivery.TryParseEndpoint(o.Delivery.Lmtp, out _), "Delivery.Lmtp",
            "must be unix:/path (or /path) for a unix socket, or host:port");
        Check(o.Limits.MaxMessageSize is >= 1024 and <= 2L * 1024 * 1024 * 1024, "Limits.MaxMessageSize", "must be between 1024 and 2147483648 octets");
        Check(o.Limits.MaxRecipients is >= 1 and <= 10_000, "Limits.MaxRecipients", "must be between 1 and 10000");
        Check(o.Limits.MaxConnections >= 1, "Limits.MaxConnections", "must be at least 1");
        Check(o.Limits.MaxConnectionsSubmission >= 1, "Limits.MaxConnectionsSubmission", "must be at least 1");
        Check(o.Limits.MaxConnectionsPerIp >= 1, "Limits.MaxConnectionsPerIp", "must be at least 1");
        Check(o.Limits.CommandTimeout > TimeSpan.Zero, "Limits.CommandTimeout", "must be positive");
        Check(o.Limits.HandshakeTimeout > TimeSpan.Zero, "Limits.HandshakeTimeout", "must be positive");
        Check(o.Limits.DataTimeout > TimeSpan.Zero, "Limits.DataTimeout", "must be positive");
        Check(o.Limits.MinDataRate >= 0, "Limits.MinDataRate", "must be 0 (none) or more");
        Check(o.Limits.MaxHeaderSize >= 1024, "Limits.MaxHeaderSize", "must be at least 1024 octets");
        Check(o.Limits.MaxHeaderFields >= 10, "Limits.MaxHeaderFields", "must be at least 10");
        Check(o.Limits.MaxHops >= 1, "Limits.MaxHops", "must be at least 1");
        Check(o.Limits.MaxMimeParts >= 1, "Limits.MaxMimeParts", "must be at least 1");
        Check(o.Limits.MaxMimeDepth >= 1, "Limits.MaxMimeDepth", "must be at least 1");
        Check(o.Limits.MaxErrors >= 1, "Limits.MaxErrors", "must be at least 1");
        Check(o.Limits.MaxJunkCommands >= 1, "Limits.MaxJunkCommands", "must be at least 1");
        Check(o.Limits.SessionLifetime >= TimeSpan.FromSeconds(1) && o.Limits.SessionLifetime <= TimeSpan.FromDays(1), "Limits.SessionLifetime", "must be between 1 second and 1 day");
        Check(o.Triage.GreetingPause >= TimeSpan.Zero && o.Triage.GreetingPause <= TimeSpan.FromSeconds(60), "Triage.GreetingPause", "must be between 0 and 60 seconds (clients wait at most 5 minutes for a greeting, RFC 5321 §4.5.3.2.1)");
        Check(o.Triage.CacheTime >= TimeSpan.Zero, "Triage.CacheTime", "must not be negative");
        foreach (var (lists, name) in new[] { (o.Dnsbl.Lists, "Dnsbl.Lists"), (o.Dnsbl.AllowLists, "Dnsbl.AllowLists") })
        {
            for (var i = 0; i < lists.Count; i++)
            {
                var zone = lists[i].Zone ?? "";
                Check(Postern.Protocol.Addresses.AddressParser.IsDomain(zone.TrimEnd('.'), false) && zone.Contains('.', StringComparison.Ordinal), $"{name}[{i}].Zone", $"'{zone}' is not a DNS zone (e.g. zen.spamhaus.org)");
                Check(lists[i].Weight is >= 1 and <= 1000, $"{name}[{i}].Weight", "must be between 1 and 1000");
                for (var j = 0; j < lists[i].Answers.Count; j++)
                {
                    Check(Postern.Server.Limits.DnsList.IsAnswerPattern(lists[i].Answers[j]), $"{name}[{i}].Answers[{j}]", $"'{lists[i].Answers[j]}' is not an answer pattern (e.g. 127.0.0.2 or 127.0.0.[2..11])");
                }
            }
        }
        Check(o.Dnsbl.Threshold >= 1, "Dnsbl.Threshold", "must be at least 1");
        Check(o.Dnsbl.Timeout > TimeSpan.Zero && o.Dnsbl.Timeout <= TimeSpan.FromSeconds(60), "Dnsbl.Timeout", "must be between 0 and 60 seconds");
        Check(o.Dnsbl.CacheTime >= TimeSpan.Zero, "Dnsbl.CacheTime", "must not be negative");
        Check(o.Limits.MaxConnectionsPerIpPerMinute >= 0, "Limits.MaxConnectionsPerIpPerMinute", "must be 0 (no limit) or more");
        Check(o.Limits.MaxMessagesPerHourPerIp >= 0, "Limits.MaxMessagesPerHourPerIp", "must be 0 (no limit) or more");
        Check(o.Limits.MaxRecipientsPerHourPerIp >= 0, "Limits.MaxRecipientsPerHourPerIp", "must be 0 (no limit) or more");
        Check(o.Limits.MaxMessagesPerHourPerUser >= 0, "Limits.MaxMessagesPerHourPerUser", "must be 0 (no limit) or more");
        Check(o.Limits.MaxRecipientsPerHourPerUser >= 0, "Limits.MaxRecipientsPerHourPerUser", "must be 0 (no limit) or more");
        Check(o.Limits.TarpitAfterErrors >= 0, "Limits.TarpitAfterErrors", "must be 0 (never) or more");
        Check(o.Limits.TarpitDelay >= TimeSpan.Zero && o.Limits.TarpitDelay <= TimeSpan.FromSeconds(30), "Limits.TarpitDelay", "must be between 0 and 30 seconds");
        Check(o.Limits.ShutdownTimeout >= TimeSpan.Zero, "Limits.ShutdownTimeout", "must not be negative");
        Check(!string.IsNullOrWhiteSpace(o.Accounts.PasswdFile), "Accounts.PasswdFile", "is required");
        Check(Enum.IsDefined(o.Logging.Level), "Logging.Level", "must be trace, debug, information, warning, error, critical or none");
        Check(Enum.IsDefined(o.Logging.Format), "Logging.Format", "must be keyvalue or json");
        Check(o.Accounts.MaxAuthFailures >= 1, "Accounts.MaxAuthFailures", "must be at least 1");
        Check(o.Accounts.MaxAuthFailuresPerAccount >= 1, "Accounts.MaxAuthFailuresPerAccount", "must be at least 1");
        Check(o.Accounts.MaxLockoutDuration >= o.Accounts.LockoutDuration, "Accounts.MaxLockoutDuration", "must be at least Accounts.LockoutDuration");
        Check(o.Accounts.FailureDelay >= TimeSpan.Zero && o.Accounts.FailureDelay <= TimeSpan.FromMinutes(1), "Accounts.FailureDelay", "must be between 0 and 1 minute");
        Check(o.Accounts.FailureWindow > TimeSpan.Zero, "Accounts.FailureWindow", "must be positive");
        Check(o.Accounts.LockoutDuration > TimeSpan.Zero, "Accounts.LockoutDuration", "must be positive");
        for (var i = 0; i < o.Sendmail.TrustedUsers.Count; i++)
        {
            Check(System.Text.RegularExpressions.Regex.IsMatch(o.Sendmail.TrustedUsers[i] ?? "", @"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$"), $"Sendmail.TrustedUsers[{i}]", $"'{o.Sendmail.TrustedUsers[i]}' is not a Unix user name");
        }
        for (var i = 0; i < o.Filters.Milters.Count; i++)
        {
            var m = o.Filters.Milters[i];
            var key = $"Filters.Milters[{i}]";
            Check(!string.IsNullOrWhiteSpace(m.Name), $"{key}.Name", "is required (the milter's name in logs and the queue entry)");
            Check(string.IsNullOrWhiteSpace(m.Name) || o.Filters.Milters.Take(i).All(x => !string.Equals(x.Name, m.Name, StringComparison.OrdinalIgnoreCase)), $"{key}.Name", $"'{m.Name}' is the name of another milter");
            Check(Postern.Server.Filters.Milter.MilterAddress.TryParse(m.Address, out _), $"{key}.Address", $"'{m.Address}' is not unix:/path or inet:host:port (or host:port)");
            Check(m.ConnectTimeout > TimeSpan.Zero && m.ConnectTimeout <= TimeSpan.FromMinutes(5), $"{key}.ConnectTimeout", "must be between 0 and 5 minutes");
            Check(m.CommandTimeout > TimeSpan.Zero && m.CommandTimeout <= TimeSpan.FromMinutes(5), $"{key}.CommandTimeout", "must be between 0 and 5 minutes (RFC 5321 §4.5.3.2 gives the client 5 minutes for most replies)");
            Check(m.ContentTimeout > TimeSpan.Zero && m.ContentTimeout <= TimeSpan.FromMinutes(10), $"{key}.ContentTimeout", "must be between 0 and 10 minutes (RFC 5321 §4.5.3.2.6: the client waits 10 minutes for the reply to the final dot)");
            Check(Enum.IsDefined(m.DefaultAction), $"{key}.DefaultAction", "must be tempfail or accept");
        }
        if (!string.IsNullOrEmpty(o.Rspamd.Url))
        {
            Check(Uri.TryCreate(o.Rspamd.Url, UriKind.Absolute, out var rspamd) && rspamd.Scheme is "http" or "https" && rspamd.Host.Length > 0 && rspamd.Query.Length == 0,
                "Rspamd.Url", $"'{o.Rspamd.Url}' is not an http:// or https:// address (e.g. http://127.0.0.1:11333)");
        }
        Check(o.Rspamd.Timeout > TimeSpan.Zero && o.Rspamd.Timeout <= TimeSpan.FromMinutes(5), "Rspamd.Timeout", "must be between 0 and 5 minutes");
        Check(o.Rspamd.MaxMessageSize >= 1024, "Rspamd.MaxMessageSize", "must be at least 1024 octets");
        Check(Enum.IsDefined(o.Rspamd.Headers), "Rspamd.Headers", "must be all, score or none");
        foreach (var (id, key) in new[] { (o.Rspamd.SettingsIdMx, "Rspamd.SettingsIdMx"), (o.Rspamd.SettingsIdSubmission, "Rspamd.SettingsIdSubmission") })
        {
            // Sent as an HTTP header value: a name from rspamd's settings, nothing that could end the line.
            Check(string.IsNullOrEmpty(id) || System.Text.RegularExpressions.Regex.IsMatch(id, "^[A-Za-z0-9_.-]{1,64}$"), key, $"'{id}' is not a settings id (letters, digits, '_', '.', '-'; at most 64)");
        }
        foreach (var (key, targets) in o.Aliases)
        {
            var ok = Postern.Protocol.Addresses.AddressParser.TryParseMailbox(key, true, out _) == Postern.Protocol.Addresses.AddressError.None;
            Check(ok, $"Aliases.{key}", "is not an address (user@domain)");
            Check(targets is { Count: > 0 }, $"Aliases.{key}", "needs at least one target address");
            foreach (var t in targets ?? [])
            {
                Check(Postern.Protocol.Addresses.AddressParser.TryParseMailbox(t, true, out _) == Postern.Protocol.Addresses.AddressError.None,
                    $"Aliases.{key}", $"target '{t}' is not an address");
            }
        }
        return errors;
    }
}
