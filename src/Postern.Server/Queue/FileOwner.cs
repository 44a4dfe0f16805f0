using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Postern.Server.Queue;

/// <summary>The owner, group and permission bits of a file (stat(2)'s st_uid, st_gid and st_mode).</summary>
public readonly record struct FileOwner(uint Uid, uint Gid, UnixFileMode Mode);

/// <summary>
/// Reads and sets a file's owner and group, which .NET has no API for (it has one for the mode).
/// Used where a file Postern rewrites is shared with another program by group, such as the passwd
/// file Dovecot's auth process reads (README, contrib/dovecot/10-postern.conf).
/// </summary>
public static partial class FileOwners
{
    /// <summary>The owner, group and mode of <paramref name="path"/>; null on Windows or when it does not exist.</summary>
    public static FileOwner? Of(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        // struct stat as glibc lays it out: st_uid and st_gid follow st_mode on x86-64 and on arm64 at these offsets.
        var (uidAt, gidAt) = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? (28, 32) : (24, 28);
        var buffer = new byte[256];
        if (Stat(path, buffer) != 0)
        {
            return null;
        }
        return new FileOwner(BitConverter.ToUInt32(buffer, uidAt), BitConverter.ToUInt32(buffer, gidAt), File.GetUnixFileMode(path));
    }

    /// <summary>
    /// Gives the open file <paramref name="file"/> (<paramref name="path"/>, for messages) the owner,
    /// group and mode of <paramref name="old"/>, in that order (a chown clears set-id bits).
    /// </summary>
    /// <exception cref="IOException">The owner or group cannot be kept, with the file and group named and what to do.</exception>
    public static void Apply(SafeFileHandle file, string path, FileOwner old)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        if (Fchown((int)file.DangerousGetHandle(), old.Uid, old.Gid) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var uid = GetEuid();
            var why = old.Uid != uid && uid != 0
                ? $"it belongs to {UserName(old.Uid)} and this command runs as {UserName(uid)}: run it as {UserName(old.Uid)} or as root"
                : $"this command's user ({UserName(uid)}) is not in the group {GroupName(old.Gid)}: add it (adduser {UserName(uid)} {GroupName(old.Gid)}), run it as root, or change the file's group";
            throw new IOException($"cannot keep owner {UserName(old.Uid)} and group {GroupName(old.Gid)} of {path} (errno {errno}): {why}; the file was left as it was");
        }
        File.SetUnixFileMode(file, old.Mode);
    }

    /// <summary>The name in /etc/group for <paramref name="gid"/>, or the number.</summary>
    public static string GroupName(uint gid) => NameIn("/etc/group", gid);

    /// <summary>The name in /etc/passwd for <paramref name="uid"/>, or the number.</summary>
    public static string UserName(uint uid) => NameIn("/etc/passwd", uid);

    private static string NameIn(string file, uint id)
    {
        try
        {
            foreach (var line in File.ReadLines(file))
            {
                var fields = line.Split(':');
                if (fields.Length > 2 && uint.TryParse(fields[2], out var n) && n == id)
                {
                    return fields[0];
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only for a message: the number says it too.
        }
        return id.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Stat(string path, [Out] byte[] buffer);

    [LibraryImport("libc", EntryPoint = "fchown", SetLastError = true)]
    private static partial int Fchown(int fd, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();
}
