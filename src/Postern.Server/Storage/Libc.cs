using System.Runtime.InteropServices;

namespace Postern.Server.Storage;

/// <summary>
/// Every call into the C library, declared once. .NET has no API for who a user is, for switching
/// to one, for a file's owner and group, or for opening a file without following a symbolic link;
/// <see cref="UnixUser"/>, <see cref="FileStatus"/> and <see cref="FileOwner"/> wrap these for the
/// rest of the code, and <see cref="Durability"/> uses open/fsync/close to make a directory
/// entry durable. The names are libc's, so that man pages find them.
/// </summary>
internal static partial class Libc
{
    public const int ENOENT = 2;
    public const int ERANGE = 34;
    public const int ELOOP = 40;
    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_EMPTY_PATH = 0x1000;

    /// <summary>STATX_BASIC_STATS: type, mode, links, owner, group, times, inode, size, blocks.</summary>
    public const uint STATX_BASIC_STATS = 0x7ff;

    public const int O_RDONLY = 0;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;

    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    /// <summary>O_PATH: a descriptor that only names the file (no read permission needed): 010000000 everywhere.</summary>
    public const int O_PATH = 0x200000;

    /// <summary>O_DIRECTORY: 040000 on ARM, 0200000 on x86 (asm/fcntl.h of each).</summary>
    public static int O_DIRECTORY => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x4000 : 0x10000;

    /// <summary>O_NOFOLLOW: 0100000 on ARM, 0400000 on x86 (asm/fcntl.h of each).</summary>
    public static int O_NOFOLLOW => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000;

    [LibraryImport("libc", SetLastError = true)]
    public static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true)]
    public static partial uint getuid();

    [LibraryImport("libc", SetLastError = true)]
    public static partial uint getegid();

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setuid(uint uid);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setgid(uint gid);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int initgroups(string user, uint group);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int getgrouplist(string user, uint group, [In, Out] uint[] groups, ref int ngroups);

    [LibraryImport("libc")]
    public static partial uint umask(uint mask);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static unsafe partial int getpwnam_r(string name, byte* pwd, byte* buf, nuint buflen, out nint result);

    [LibraryImport("libc")]
    public static unsafe partial int getpwuid_r(uint uid, byte* pwd, byte* buf, nuint buflen, out nint result);

    [LibraryImport("libc")]
    public static unsafe partial int getgrgid_r(uint gid, byte* grp, byte* buf, nuint buflen, out nint result);

    /// <summary>statx(2): one layout on every architecture, unlike struct stat.</summary>
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int chown(string path, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fchown(int fd, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int syncfs(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int openat(int dirfd, string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int renameat(int olddirfd, string oldpath, int newdirfd, string newpath);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unlinkat(int dirfd, string path, int flags);
}
