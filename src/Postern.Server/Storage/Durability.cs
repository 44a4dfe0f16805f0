using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Postern.Server.Storage;

/// <summary>
/// The seam through which everything that must reach stable storage goes (STYLE principle 6).
/// Contract: when <see cref="FlushFile"/> or <see cref="FlushDirectory"/> returns, the data or the
/// directory entry is on stable storage; on failure they throw <see cref="IOException"/> and nothing
/// may be acknowledged. <see cref="BeforeWrite"/> may throw like a write would (for a full disk).
/// Tests substitute a faulty implementation.
/// </summary>
public interface IDurability
{
    void BeforeWrite(string path, int count);
    void FlushFile(SafeFileHandle file, string path);
    void FlushDirectory(string path);
}

/// <summary>The real thing: fsync(2) of files and of directories.</summary>
public sealed class Durability : IDurability
{
    public static readonly Durability Instance = new();

    public void BeforeWrite(string path, int count)
    {
    }

    public void FlushFile(SafeFileHandle file, string path) => RandomAccess.FlushToDisk(file);

    /// <summary>
    /// A rename is only durable once its directory is fsync'd (chasquid's safeio forgot this).
    /// .NET cannot open a directory as a file, so this goes to libc.
    /// </summary>
    public void FlushDirectory(string path)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
        {
            return;
        }
        var fd = Libc.open(path, Libc.O_RDONLY, 0);
        if (fd < 0)
        {
            throw new IOException($"open({path}) for fsync failed: errno {Marshal.GetLastPInvokeError()}");
        }
        try
        {
            if (Libc.fsync(fd) != 0)
            {
                throw new IOException($"fsync({path}) failed: errno {Marshal.GetLastPInvokeError()}");
            }
        }
        finally
        {
            _ = Libc.close(fd);
        }
    }

    /// <summary>
    /// syncfs(2) of the file system <paramref name="file"/> is on: for a rename in a directory the
    /// caller may not open (a user in the 1733 maildrop), whose entry this commits with everything
    /// else. Nothing to do where there is no syncfs (not Linux).
    /// </summary>
    /// <exception cref="IOException">syncfs failed: the rename may not be durable.</exception>
    public static void SyncFileSystem(SafeFileHandle file)
    {
        if (OperatingSystem.IsLinux() && Libc.syncfs((int)file.DangerousGetHandle()) != 0)
        {
            throw new IOException($"syncfs failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }
}

/// <summary>Small, paranoid file operations built on <see cref="IDurability"/>.</summary>
public static class SafeFile
{
    /// <summary>Writes a whole file durably: temp file, fsync, rename, fsync the directory.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> content, IDurability durability, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite) =>
        WriteAllBytes(path, content, durability, mode, null);

    /// <summary>
    /// Like <see cref="WriteAllBytes(string, ReadOnlySpan{byte}, IDurability, UnixFileMode)"/>, and the new file gets
    /// <paramref name="owner"/>'s owner, group and mode before the rename, so that no reader of the old
    /// file (by group) ever finds it unreadable. Throws (nothing replaced) when they cannot be kept.
    /// </summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> content, IDurability durability, UnixFileMode mode, FileStatus? owner)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Random.Shared.Next():x}.tmp");
        try
        {
            using (var handle = SafeFile.CreateNew(tmp, mode))
            {
                durability.BeforeWrite(tmp, content.Length);
                RandomAccess.Write(handle, content, 0);
                if (owner is { } keep)
                {
                    FileOwner.Keep(handle, path, keep);
                    LaterInWholeSeconds(handle, keep.Modified);
                }
                durability.FlushFile(handle, tmp);
            }
            File.Move(tmp, path, overwrite: true);
            durability.FlushDirectory(dir);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>
    /// Gives the replacement a modification time in a later second than the file it replaces. Readers
    /// that notice a change by mtime in seconds and size (Dovecot's passwd-file) would otherwise miss a
    /// password changed within the second they last read the file, the new hash being as long as the old.
    /// </summary>
    private static void LaterInWholeSeconds(SafeFileHandle handle, DateTimeOffset old)
    {
        var oldSecond = old.ToUnixTimeSeconds();
        if (DateTimeOffset.UtcNow.ToUnixTimeSeconds() <= oldSecond)
        {
            File.SetLastWriteTimeUtc(handle, DateTimeOffset.FromUnixTimeSeconds(oldSecond + 1).UtcDateTime);
        }
    }

    /// <summary>Creates a new file that nobody else can read (the spool holds other people's mail).</summary>
    public static SafeFileHandle CreateNew(string path, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        // ReadWrite: the spool reads a message back through its own handle before the commit (DKIM).
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        if (!OperatingSystem.IsWindows())
        {
            // The data directory itself is 0700, so the umask-wide moment before this is not visible.
            File.SetUnixFileMode(handle, mode);
        }
        return handle;
    }

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>True for the IOException of a full disk or quota (ENOSPC, EDQUOT).</summary>
    public static bool IsDiskFull(IOException e) => (e.HResult & 0xFFFF) is 28 or 122 || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase);
}
