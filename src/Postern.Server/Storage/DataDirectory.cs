using Postern.Server.Configuration;

namespace Postern.Server.Storage;

/// <summary>
/// Who the data directory belongs to, and keeping it that way. The data directory is mode 0711:
/// other users may pass through it to a name they know (the sendmail drop, Dovecot's auth process to
/// the passwd file) but never list it; what Postern keeps in it is its own user's alone (the process
/// umask is 077 and the folders below are made 0700). A verb run as root acts as the directory's
/// user, so nothing root-owned is ever left in it (Postfix's postqueue and postdrop do the same).
/// </summary>
public static class DataDirectory
{
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The folders of SPEC §3 that hold mail, keys and state: 0700 whatever an older version or a umask made them.</summary>
    private static readonly string[] PrivateFolders = ["queue", "mail", "dkim", "tls"];

    /// <summary>
    /// The user who works in the data directory: <see cref="PosternOptions.User"/>, else the
    /// directory's owner, else (a directory not made yet) the user this process runs as.
    /// </summary>
    public static UnixUser Owner(PosternOptions options)
    {
        if (!string.IsNullOrEmpty(options.User))
        {
            return UnixUser.ByName(options.User) ?? throw new ConfigurationException($"User: there is no user '{options.User}' (create it, e.g. adduser --system --group {options.User})");
        }
        return UnixUser.OwnerOf(options.DataDirectory) ?? UnixUser.Current;
    }

    /// <summary>
    /// The user `serve` will run as, from here: the data directory's user (<see cref="Owner"/>) when
    /// started as root, else this process's own user (it cannot become another; a different
    /// <see cref="PosternOptions.User"/> is an error).
    /// </summary>
    public static UnixUser ServerUser(PosternOptions options)
    {
        var current = UnixUser.Current;
        if (current.IsRoot)
        {
            return Owner(options);
        }
        if (!string.IsNullOrEmpty(options.User) && UnixUser.ByName(options.User) is { } wanted && wanted.Uid != current.Uid)
        {
            throw new ConfigurationException($"User: serve runs as {current.Name}, not as root, so it cannot become {wanted.Name} (start it as root or as {wanted.Name})");
        }
        return current;
    }

    /// <summary>
    /// Whether this process may change its user: set by the `postern` executable. A host that runs the
    /// command line inside itself (the tests) stays who it is.
    /// </summary>
    public static bool MayChangeUser { get; set; }

    /// <summary>
    /// Run as root: makes the data directory when it is missing (given to the owner), then becomes
    /// the owner, so every file made from here on is theirs. Not root: nothing to switch, the kernel
    /// decides. Returns the user the process now runs as.
    /// </summary>
    public static UnixUser ActAsOwner(PosternOptions options)
    {
        var current = UnixUser.Current;
        if (OperatingSystem.IsWindows() || !current.IsRoot || !MayChangeUser)
        {
            return current;
        }
        var owner = Owner(options);
        if (!Directory.Exists(options.DataDirectory))
        {
            Directory.CreateDirectory(options.DataDirectory, Mode);
            FileOwner.Chown(options.DataDirectory, owner.Uid, owner.Gid);
        }
        else if (FileStatus.Of(options.DataDirectory) is { } s && s.Uid != owner.Uid)
        {
            var holder = UnixUser.ById(s.Uid)?.Name ?? $"uid {s.Uid}";
            throw new ConfigurationException($"User: the data directory {options.DataDirectory} belongs to {holder}, not to {owner.Name} (give it over with: chown -R {owner.Name}: {options.DataDirectory})");
        }
        owner.Become();
        return owner;
    }

    /// <summary>Makes the data directory if missing and gives it and its private folders their modes (at server start, as the owner).</summary>
    public static void Secure(string path)
    {
        Directory.CreateDirectory(path);
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        File.SetUnixFileMode(path, Mode);
        foreach (var name in PrivateFolders)
        {
            var folder = Path.Combine(path, name);
            if (Directory.Exists(folder))
            {
                File.SetUnixFileMode(folder, Private);
            }
        }
    }
}
