using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Postern.Server.Storage;

/// <summary>
/// What statx(2) says of a file: its owner, group and permission bits (what .NET's File API lacks:
/// it has the mode, not the owner), and for a file opened to be read, its type, links, size and
/// modification time. statx has one layout on every architecture, unlike struct stat. Linux only:
/// elsewhere every lookup answers null.
/// </summary>
public readonly record struct FileStatus(uint Uid, uint Gid, UnixFileMode Mode, bool IsRegular, uint Links, long Size, DateTimeOffset Modified)
{
    /// <summary>The status of <paramref name="path"/>, symbolic links followed (stat(2)); null when it does not exist or cannot be seen.</summary>
    public static FileStatus? Of(string path) => Statx(Libc.AT_FDCWD, path, 0);

    /// <summary>
    /// The status of <paramref name="path"/> itself when it is a symbolic link (lstat(2)): for a
    /// name a user may have planted, whose owner is the one to name, not its target's.
    /// </summary>
    public static FileStatus? OfLink(string path) => Statx(Libc.AT_FDCWD, path, Libc.AT_SYMLINK_NOFOLLOW);

    /// <summary>
    /// Opens <paramref name="path"/> for reading the way a reader of other users' files must:
    /// O_NOFOLLOW (a symbolic link fails with ELOOP) and O_NONBLOCK (a FIFO does not block), and
    /// says what was opened (fstat of the descriptor, so nothing can be swapped in between). Null
    /// with <paramref name="errno"/> when the open fails.
    /// </summary>
    public static SafeFileHandle? OpenNoFollow(string path, out int errno, out FileStatus status)
    {
        status = default;
        var fd = Libc.open(path, Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Statx(fd, "", Libc.AT_EMPTY_PATH) is not { } s)
        {
            errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            return null;
        }
        errno = 0;
        status = s;
        return handle;
    }

    /// <summary>open(2) failed because the name is a symbolic link (O_NOFOLLOW).</summary>
    public const int ELOOP = Libc.ELOOP;

    /// <summary>open(2) failed because the name is gone.</summary>
    public const int ENOENT = Libc.ENOENT;

    internal static FileStatus? Statx(int dirfd, string path, int flags)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        var buffer = new byte[256];
        if (Libc.statx(dirfd, path, flags, Libc.STATX_BASIC_STATS, buffer) != 0)
        {
            return null;
        }
        // struct statx (linux/stat.h): stx_nlink at 16, stx_uid 20, stx_gid 24, stx_mode (16 bits) 28,
        // stx_size 40, stx_mtime.tv_sec 112.
        var mode = BitConverter.ToUInt16(buffer, 28);
        return new FileStatus(
            Uid: BitConverter.ToUInt32(buffer, 20),
            Gid: BitConverter.ToUInt32(buffer, 24),
            Mode: (UnixFileMode)(mode & 0xFFF),
            IsRegular: (mode & 0xF000) == 0x8000,
            Links: BitConverter.ToUInt32(buffer, 16),
            Size: (long)BitConverter.ToUInt64(buffer, 40),
            Modified: DateTimeOffset.FromUnixTimeSeconds(BitConverter.ToInt64(buffer, 112)));
    }
}

/// <summary>
/// Changing a file's owner and group, which .NET has no API for (it has one for the mode). Used to
/// give the data directory to its user, and where a file Postern rewrites is shared with another
/// program by group, such as the passwd file Dovecot's auth process reads (README,
/// contrib/dovecot/10-postern.conf) or a configuration file the server reads through its group.
/// </summary>
public static class FileOwner
{
    /// <summary>
    /// Gives <paramref name="path"/> to <paramref name="uid"/>:<paramref name="gid"/> (root may; an
    /// owner may change the group to one of its own). A gid of uint.MaxValue leaves the group as it is (chown(2)).
    /// </summary>
    public static void Chown(string path, uint uid, uint gid = uint.MaxValue)
    {
        if (Libc.chown(path, uid, gid) != 0)
        {
            throw new UnauthorizedAccessException($"cannot give {path} to uid {uid}, gid {gid}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>
    /// Gives the open file <paramref name="file"/> (<paramref name="path"/>, for messages) the owner,
    /// group and mode of <paramref name="old"/>, in that order (a chown clears set-id bits).
    /// </summary>
    /// <exception cref="IOException">The owner or group cannot be kept, with the file and group named and what to do.</exception>
    public static void Keep(SafeFileHandle file, string path, FileStatus old)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        if (Libc.fchown((int)file.DangerousGetHandle(), old.Uid, old.Gid) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var uid = UnixUser.EffectiveUid;
            var owner = UnixUser.NameOf(old.Uid);
            var group = UnixUser.GroupNameOf(old.Gid);
            var why = old.Uid != uid && uid != 0
                ? $"it belongs to {owner} and this command runs as {UnixUser.NameOf(uid)}: run it as {owner} or as root"
                : $"this command's user ({UnixUser.NameOf(uid)}) is not in the group {group}: add it (adduser {UnixUser.NameOf(uid)} {group}), run it as root, or change the file's group";
            throw new IOException($"cannot keep owner {owner} and group {group} of {path} (errno {errno}): {why}; the file was left as it was");
        }
        File.SetUnixFileMode(file, old.Mode);
    }
}
