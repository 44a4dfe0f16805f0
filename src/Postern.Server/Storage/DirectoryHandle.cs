using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Postern.Server.Storage;

/// <summary>
/// A directory held by descriptor (O_PATH, O_DIRECTORY, O_NOFOLLOW), so that files are created,
/// renamed and removed relative to it (openat, renameat, unlinkat): once it is open, nobody can
/// redirect those names by swapping the directory for a symbolic link. For a program running as
/// root that writes into a folder another user owns (root's `postern sendmail` into the data
/// directory's maildrop), the difference between writing where it checked and writing wherever
/// that user points it. O_PATH needs no read permission (the maildrop is 1733).
/// </summary>
public sealed class DirectoryHandle : IDisposable
{
    private readonly SafeFileHandle _handle;

    private DirectoryHandle(SafeFileHandle handle, string path, FileStatus status)
    {
        _handle = handle;
        Path = path;
        Status = status;
    }

    public string Path { get; }

    /// <summary>Owner, group and mode of the directory that was opened (fstat of the descriptor).</summary>
    public FileStatus Status { get; }

    /// <summary>Opens <paramref name="path"/>, whose last component must be a directory and not a symbolic link; IOException otherwise.</summary>
    public static DirectoryHandle Open(string path)
    {
        var fd = Libc.open(path, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            // O_NOFOLLOW with O_DIRECTORY answers a link with ELOOP or ENOTDIR.
            throw new IOException(errno == Libc.ELOOP || new FileInfo(path).LinkTarget is not null
                ? $"{path} is a symbolic link, not a directory: refused"
                : $"cannot open {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (FileStatus.Statx(fd, "", Libc.AT_EMPTY_PATH) is not { } status)
        {
            handle.Dispose();
            throw new IOException($"cannot look at {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        return new DirectoryHandle(handle, path, status);
    }

    /// <summary>Creates <paramref name="name"/> in it, never an existing name nor through a link (O_CREAT, O_EXCL, O_NOFOLLOW), then gives it <paramref name="mode"/> (whatever the umask).</summary>
    public SafeFileHandle CreateNew(string name, UnixFileMode mode)
    {
        var fd = Libc.openat(Fd, name, Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, (int)mode);
        if (fd < 0)
        {
            throw new IOException($"cannot create {name} in {Path}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        var file = new SafeFileHandle(fd, ownsHandle: true);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(file, mode);
        }
        return file;
    }

    public void Rename(string from, string to)
    {
        if (Libc.renameat(Fd, from, Fd, to) != 0)
        {
            throw new IOException($"cannot rename {from} to {to} in {Path}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>Removes <paramref name="name"/> if it is there; false when it was not.</summary>
    public bool TryDelete(string name) => Libc.unlinkat(Fd, name, 0) == 0;

    private int Fd => (int)_handle.DangerousGetHandle();

    public void Dispose() => _handle.Dispose();
}
