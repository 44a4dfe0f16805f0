using System.Runtime.InteropServices;

namespace Postern.Server.Storage;

/// <summary>
/// Owner, group and mode of a path, and changing them: what .NET's File API does not offer
/// (it has the mode, not the owner). stat(2) and chown(2) from the C library.
/// </summary>
public static partial class FileOwner
{
    public readonly record struct Status(uint Uid, uint Gid, UnixFileMode Mode);

    /// <summary>The status of <paramref name="path"/> (symbolic links followed), or null when it does not exist or cannot be seen.</summary>
    public static Status? Stat(string path)
    {
        // struct stat differs by architecture (glibc's x86_64 and the generic layout of arm64).
        var (modeAt, uidAt) = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => (24, 28),
            Architecture.Arm64 => (16, 24),
            var other => throw new PlatformNotSupportedException($"stat(2) layout of {other}"),
        };
        var buffer = new byte[256];
        unsafe
        {
            fixed (byte* b = buffer)
            {
                if (stat(path, b) != 0)
                {
                    return null;
                }
                return new Status(*(uint*)(b + uidAt), *(uint*)(b + uidAt + 4), (UnixFileMode)(*(uint*)(b + modeAt) & 0xFFF));
            }
        }
    }

    /// <summary>Gives <paramref name="path"/> to <paramref name="uid"/>:<paramref name="gid"/> (root may; an owner may change the group to one of its own).</summary>
    public static void Chown(string path, uint uid, uint gid)
    {
        if (chown(path, uid, gid) != 0)
        {
            throw new UnauthorizedAccessException($"cannot give {path} to uid {uid}, gid {gid}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int stat(string path, byte* buf);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int chown(string path, uint owner, uint group);
}
