using System.Runtime.InteropServices;
using static Postern.Server.Storage.Libc;

namespace Postern.Server.Storage;

/// <summary>
/// A Unix account as the C library sees it (passwd database through NSS): who owns the data
/// directory, who the server runs as, and whether that user can read or write a path. The only
/// place that calls setuid(2) and friends: <see cref="Become"/>.
/// </summary>
public sealed record UnixUser(string Name, uint Uid, uint Gid, string Home)
{
    public bool IsRoot => Uid == 0;

    /// <summary>The effective user of this process.</summary>
    public static UnixUser Current => ById(geteuid()) ?? new UnixUser($"uid {geteuid()}", geteuid(), getegid(), "/");

    /// <summary>The effective uid of this process, without a passwd lookup (0 on Windows, which has none).</summary>
    public static uint EffectiveUid => OperatingSystem.IsWindows() ? 0 : geteuid();

    public static UnixUser? ByName(string name) => Lookup(name, 0, byName: true);

    public static UnixUser? ById(uint uid) => Lookup(null, uid, byName: false);

    /// <summary>The user that owns <paramref name="path"/> (a name when the passwd database has one), or null when it does not exist.</summary>
    public static UnixUser? OwnerOf(string path) =>
        FileStatus.Of(path) is { } s ? ById(s.Uid) ?? new UnixUser($"uid {s.Uid}", s.Uid, s.Gid, "/") : null;

    /// <summary>The user's groups: its primary group and every group the group database lists it in.</summary>
    public IReadOnlyList<uint> Groups()
    {
        var n = 64;
        while (true)
        {
            var groups = new uint[n];
            var count = n;
            if (getgrouplist(Name, Gid, groups, ref count) >= 0)
            {
                return groups[..count];
            }
            n = Math.Max(count, n * 2);
        }
    }

    /// <summary>
    /// Runs this process as this user from now on: its groups (initgroups), its group, its user, in
    /// that order (once the uid is given up, the groups could no longer be changed). glibc applies each
    /// call to every thread of the process. Checked afterwards: a half-done switch is an exception.
    /// </summary>
    public void Become()
    {
        if (geteuid() == Uid && getegid() == Gid)
        {
            return;
        }
        if (initgroups(Name, Gid) != 0 || setgid(Gid) != 0 || setuid(Uid) != 0)
        {
            throw new UnauthorizedAccessException($"cannot switch to user {Name} (uid {Uid}): {Marshal.GetLastPInvokeErrorMessage()}");
        }
        if (geteuid() != Uid || getuid() != Uid || getegid() != Gid || setuid(0) == 0)
        {
            throw new UnauthorizedAccessException($"the switch to user {Name} (uid {Uid}) did not take");
        }
    }

    /// <summary>Whether this user may read the file at <paramref name="path"/>; null when it may, else why not in plain words.</summary>
    public string? CannotRead(string path) => CannotUse(path, read: true);

    /// <summary>Whether this user may create and remove files in the directory <paramref name="path"/>; null when it may, else why not.</summary>
    public string? CannotWriteDirectory(string path) => CannotUse(path, read: false);

    private string? CannotUse(string path, bool read)
    {
        if (IsRoot)
        {
            return FileStatus.Of(path) is null ? $"{path} does not exist" : null; // root passes permission bits (CAP_DAC_OVERRIDE)
        }
        var groups = Groups();
        var full = Path.GetFullPath(path);
        // Every directory on the way must be searchable (x) by the user: RFC-free, this is path_resolution(7).
        var parts = full.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var dir = "/";
        for (var i = 0; i < parts.Length - 1; i++)
        {
            if (FileStatus.Of(dir) is { } d && !Allowed(d, groups, UnixFileMode.UserExecute, UnixFileMode.GroupExecute, UnixFileMode.OtherExecute))
            {
                return $"{Name} cannot enter {dir} (mode {Octal(d.Mode)}, owner {NameOf(d.Uid)}, group {d.Gid})";
            }
            dir = Path.Combine(dir, parts[i]);
        }
        if (parts.Length > 1 && FileStatus.Of(dir) is { } last && !Allowed(last, groups, UnixFileMode.UserExecute, UnixFileMode.GroupExecute, UnixFileMode.OtherExecute))
        {
            return $"{Name} cannot enter {dir} (mode {Octal(last.Mode)}, owner {NameOf(last.Uid)}, group {last.Gid})";
        }
        if (FileStatus.Of(full) is not { } f)
        {
            return $"{full} does not exist";
        }
        var ok = read
            ? Allowed(f, groups, UnixFileMode.UserRead, UnixFileMode.GroupRead, UnixFileMode.OtherRead)
            : Allowed(f, groups, UnixFileMode.UserWrite | UnixFileMode.UserExecute, UnixFileMode.GroupWrite | UnixFileMode.GroupExecute, UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
        return ok ? null : $"{Name} cannot {(read ? "read" : "write in")} {full} (mode {Octal(f.Mode)}, owner {NameOf(f.Uid)}, group {f.Gid})";
    }

    // The owner's bits apply to the owner alone, the group's to members, the others' to the rest (chmod(2)).
    private bool Allowed(FileStatus s, IReadOnlyList<uint> groups, UnixFileMode user, UnixFileMode group, UnixFileMode other) =>
        s.Uid == Uid ? (s.Mode & user) == user
        : groups.Contains(s.Gid) ? (s.Mode & group) == group
        : (s.Mode & other) == other;

    /// <summary>The user name of <paramref name="uid"/> (passwd database, so NSS too), or the number: for messages.</summary>
    public static string NameOf(uint uid) => ById(uid)?.Name ?? uid.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The group name of <paramref name="gid"/> (group database, so NSS too), or the number: for messages.</summary>
    public static string GroupNameOf(uint gid)
    {
        // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }: 32 bytes on 64-bit.
        // A group with many members needs a bigger buffer: ERANGE says so (getgrgid_r(3)).
        for (var size = 16 * 1024; size <= 1024 * 1024; size *= 2)
        {
            var buffer = new byte[size];
            var grp = new byte[64];
            unsafe
            {
                fixed (byte* b = buffer)
                fixed (byte* g = grp)
                {
                    var rc = getgrgid_r(gid, g, b, (nuint)buffer.Length, out var result);
                    if (rc == ERANGE)
                    {
                        continue;
                    }
                    if (rc == 0 && result != 0 && Marshal.PtrToStringUTF8(*(nint*)g) is { } name)
                    {
                        return name;
                    }
                    break;
                }
            }
        }
        return gid.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode & 0xFFF, 8).PadLeft(4, '0');

    /// <summary>Files this process makes are private unless made otherwise on purpose (umask 077).</summary>
    public static void RestrictUmask() => umask(0b000_111_111);

    private static UnixUser? Lookup(string? name, uint uid, bool byName)
    {
        var buffer = new byte[16 * 1024];
        var pwd = new byte[64]; // struct passwd: 7 fields, 48 bytes on 64-bit
        int rc;
        nint result;
        unsafe
        {
            fixed (byte* b = buffer)
            fixed (byte* p = pwd)
            {
                rc = byName ? getpwnam_r(name!, p, b, (nuint)buffer.Length, out result) : getpwuid_r(uid, p, b, (nuint)buffer.Length, out result);
                if (rc != 0 || result == 0)
                {
                    return null;
                }
                // struct passwd { char *pw_name; char *pw_passwd; uid_t pw_uid; gid_t pw_gid; char *pw_gecos; char *pw_dir; char *pw_shell; }
                var pwName = Marshal.PtrToStringUTF8(*(nint*)p) ?? "";
                var pwUid = *(uint*)(p + 16);
                var pwGid = *(uint*)(p + 20);
                var pwDir = Marshal.PtrToStringUTF8(*(nint*)(p + 32)) ?? "/";
                return new UnixUser(pwName, pwUid, pwGid, pwDir);
            }
        }
    }
}
