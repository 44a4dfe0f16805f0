using Postern.Server.Configuration;
using Postern.Server.Delivery;
using Postern.Server.Listening;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server;

/// <summary>What a reload did: applied (with what changed and what needs a restart), or refused with every error.</summary>
/// <param name="Ok">False: the new configuration was refused and the one in force stays.</param>
/// <param name="File">The configuration file read again (null: the --dev defaults, or options given in-process).</param>
/// <param name="Changed">The settings applied, by key path (Limits.MaxMessageSize, Domains).</param>
/// <param name="RestartNeeded">The changed settings that only a restart applies; their running value is kept.</param>
/// <param name="Errors">Every error of a refused configuration, each naming its key.</param>
public sealed record ReloadOutcome(bool Ok, string? File, IReadOnlyList<string> Changed, IReadOnlyList<string> RestartNeeded, IReadOnlyList<string> Errors);

/// <summary>
/// Reloading the configuration (SIGHUP, `postern reload`): the file is read again with the loader
/// and validation of the start; a file that does not load or validate is refused whole, with every
/// error logged (<c>reload_failed</c>), and the configuration in force stays. Otherwise the settings
/// that need no restart are applied together: everything is prepared first (the new TLS pair loaded,
/// the DNS lists made when they changed), then one new <see cref="ServerConfiguration"/> is published.
/// A changed setting that needs a restart is logged (<c>restart_needed</c>) and keeps its running
/// value. Sessions are never dropped: see <see cref="ServerConfiguration"/> for which snapshot a
/// session uses when.
/// </summary>
public sealed partial class PosternServer
{
    private readonly object _reloadGate = new();
    private readonly string? _configFile;
    private readonly bool _dev;
    private readonly MxResolver _resolver;

    /// <summary>
    /// Called after a reload has put a new configuration in force, with its options (the hook for
    /// what lives outside the server, e.g. the log level of the logger provider ServeCommand made).
    /// </summary>
    public Action<PosternOptions>? Applied { get; init; }

    /// <summary>Reads the configuration file again and applies it (see the type's summary). Never throws.</summary>
    public ReloadOutcome Reload(string trigger)
    {
        PosternOptions loaded;
        try
        {
            // The same sources as at start: the --dev defaults, the file, POSTERN_ variables.
            loaded = ConfigurationLoader.Load(_configFile, _dev);
        }
        catch (ConfigurationException e)
        {
            return Refused(trigger, e.Message.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Refused(trigger, [$"{_configFile}: {e.Message}"]);
        }
        return Reload(loaded, trigger);
    }

    /// <summary>Applies <paramref name="loaded"/> (validated here again) as a reload would; for tests and for <see cref="Reload(string)"/>.</summary>
    public ReloadOutcome Reload(PosternOptions loaded, string trigger)
    {
        var errors = ConfigurationLoader.Validate(loaded);
        if (errors.Count > 0)
        {
            return Refused(trigger, errors);
        }
        lock (_reloadGate) // one reload at a time (a SIGHUP and a `postern reload` together)
        {
            try
            {
                return ApplyLocked(loaded, trigger);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Nothing was published (publishing is the last step): the configuration in force stays.
                return Refused(trigger, [$"the new configuration could not be applied: {e.Message}"]);
            }
        }
    }

    private ReloadOutcome ApplyLocked(PosternOptions loaded, string trigger)
    {
        var running = Context.Configuration;
        var changes = ConfigurationChanges.Between(running.Options, loaded);
        var effective = changes.Effective;
        foreach (var key in changes.RestartNeeded)
        {
            Log.RestartNeeded(_logger, key, Describe(running.Options, key), Describe(loaded, key));
        }
        // Prepare everything that can fail before anything is in force.
        (string Cert, string Key)? tlsPaths = null;
        ServedCertificate? tls = null;
        if (changes.Applied.Any(k => k.StartsWith("Tls.", StringComparison.Ordinal)))
        {
            try
            {
                tlsPaths = TlsCertificates.Prepare(effective);
                tls = TlsCertificates.Load(tlsPaths.Value.Cert, tlsPaths.Value.Key);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                return Refused(trigger, [$"Tls.CertificatePath, Tls.KeyPath: the pair does not load ({e.Message.TrimEnd('.')}); still serving {_certificates.Current.Subject}"]);
            }
        }
        if (changes.Applied.Count > 0)
        {
            var next = Configure(effective, running.Generation + 1, running);
            if (tls is not null)
            {
                _certificates.Use(tlsPaths!.Value, tls, effective.Tls.ExpiryWarning);
            }
            Context.Publish(next); // the one moment the new configuration comes into force
            Aliases?.Refresh();
        }
        Applied?.Invoke(Context.Configuration.Options);
        Log.ConfigurationReloaded(_logger, trigger, _configFile ?? "-", List(changes.Applied), List(changes.RestartNeeded));
        return new ReloadOutcome(true, _configFile, changes.Applied, changes.RestartNeeded, []);
    }

    /// <summary>The configuration made from <paramref name="options"/>, keeping from <paramref name="previous"/> what did not change and holds state (the DNS lists' cache).</summary>
    private ServerConfiguration Configure(PosternOptions options, long generation, ServerConfiguration? previous)
    {
        var dnsbl = previous is not null && JsonEqual(previous.Options.Dnsbl, options.Dnsbl) && JsonEqual(previous.Options.Dns, options.Dns)
            ? previous.DnsblMaker
            : new Lazy<Limits.Dnsbl>(() => new Limits.Dnsbl(options.Dnsbl, options.Dns, _logger, _time));
        IRemoteDelivery remote = options.Relay.Smarthost is { } smarthost
            ? new SmarthostDelivery(smarthost, options.ResolvePath(smarthost.PasswordFile ?? ""), _resolver, _outbound)
            : new DomainDelivery(_resolver, _outbound, options.Delivery.RemotePort);
        return new ServerConfiguration(options, generation, _options.Listeners, dnsbl, remote);
    }

    private ReloadOutcome Refused(string trigger, IReadOnlyList<string> errors)
    {
        Log.ConfigurationReloadFailed(_logger, trigger, _configFile ?? "-", errors.Count, string.Join("; ", errors));
        return new ReloadOutcome(false, _configFile, [], [], errors);
    }

    /// <summary>`postern queue` requests, and `postern reload` (Action "reload"), from queue/control/.</summary>
    private Task<ControlReply> ApplyControlAsync(ControlRequest request, CancellationToken stop)
    {
        if (request.Action != "reload")
        {
            return Runner.ApplyAsync(request, stop);
        }
        return Task.Run(() =>
        {
            var r = Reload("postern reload");
            return r.Ok
                ? new ControlReply("reloaded", r.Changed.Count == 0 ? "nothing changed" : $"applied: {string.Join(", ", r.Changed)}")
                {
                    File = r.File,
                    Changed = [.. r.Changed],
                    RestartNeeded = [.. r.RestartNeeded],
                }
                : new ControlReply("invalid", "the configuration was refused; the one in force stays", Ok: false) { File = r.File, Errors = [.. r.Errors] };
        }, stop);
    }

    private static string List(IReadOnlyList<string> keys) => keys.Count == 0 ? "-" : string.Join(",", keys);

    private static bool JsonEqual<T>(T a, T b) =>
        System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.JsonSerializer.SerializeToNode(a), System.Text.Json.JsonSerializer.SerializeToNode(b));

    /// <summary>The value at a key path (Listeners[0].Endpoint), as JSON, for the restart_needed line.</summary>
    private static string Describe(PosternOptions options, string path)
    {
        System.Text.Json.Nodes.JsonNode? node = System.Text.Json.JsonSerializer.SerializeToNode(options);
        foreach (var part in path.Split('.'))
        {
            var bracket = part.IndexOf('[', StringComparison.Ordinal);
            node = node?[bracket < 0 ? part : part[..bracket]];
            if (bracket >= 0 && node is System.Text.Json.Nodes.JsonArray array)
            {
                var index = int.Parse(part[(bracket + 1)..^1], System.Globalization.CultureInfo.InvariantCulture);
                node = index < array.Count ? array[index] : null;
            }
        }
        var text = node?.ToJsonString() ?? "null";
        return text.Length > 200 ? text[..200] + "..." : text;
    }
}
