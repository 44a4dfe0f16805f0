using Microsoft.Win32.SafeHandles;
using Postern.Server.Storage;

namespace Postern.IntegrationTests.CrashSafety;

/// <summary>The durability step a <see cref="FaultyDurability"/> makes fail.</summary>
public enum StorageFault
{
    None,

    /// <summary>fsync(2) of a file fails (an I/O error from the disk).</summary>
    FileFlush,

    /// <summary>A write fails with ENOSPC.</summary>
    DiskFull,

    /// <summary>fsync(2) of a directory fails, after the rename was done.</summary>
    DirectoryFlush,
}

/// <summary>
/// The real durability with a switch that makes one step fail the way a failing disk does. It
/// counts the faults it injected, so that a test can show the fault was really reached (a test
/// whose fault is never hit would pass for the wrong reason).
/// </summary>
internal sealed class FaultyDurability : IDurability
{
    private readonly ManualResetEventSlim _release = new(false);
    private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _fault;
    private int _holdAt;
    private int _injected;

    public StorageFault Fault
    {
        get => (StorageFault)Volatile.Read(ref _fault);
        set => Volatile.Write(ref _fault, (int)value);
    }

    public int Injected => Volatile.Read(ref _injected);

    /// <summary>A step that, instead of failing, waits until <see cref="ReleaseHold"/> (a slow disk), so a test can look at what the server does meanwhile.</summary>
    public StorageFault HoldAt
    {
        get => (StorageFault)Volatile.Read(ref _holdAt);
        set => Volatile.Write(ref _holdAt, (int)value);
    }

    /// <summary>Completes when a step is first held.</summary>
    public Task Held => _held.Task;

    public void ReleaseHold()
    {
        HoldAt = StorageFault.None;
        _release.Set();
    }

    /// <summary>Which paths the fault hits (all by default); e.g. only the Maildir, to fail delivery but not the spool.</summary>
    public Func<string, bool> Applies { get; set; } = _ => true;

    /// <summary>The IOException .NET raises on Linux for ENOSPC: HResult is the errno, 28.</summary>
    public static IOException DiskFullError() => new("No space left on device", 28);

    public void BeforeWrite(string path, int count)
    {
        Hold(StorageFault.DiskFull, path);
        if (Fault == StorageFault.DiskFull && Applies(path))
        {
            Interlocked.Increment(ref _injected);
            throw DiskFullError();
        }
        Durability.Instance.BeforeWrite(path, count);
    }

    public void FlushFile(SafeFileHandle file, string path)
    {
        Hold(StorageFault.FileFlush, path);
        if (Fault == StorageFault.FileFlush && Applies(path))
        {
            Interlocked.Increment(ref _injected);
            throw new IOException($"fsync({path}) failed: errno 5 (injected)", 5);
        }
        Durability.Instance.FlushFile(file, path);
    }

    public void FlushDirectory(string path)
    {
        Hold(StorageFault.DirectoryFlush, path);
        if (Fault == StorageFault.DirectoryFlush && Applies(path))
        {
            Interlocked.Increment(ref _injected);
            throw new IOException($"fsync({path}) failed: errno 5 (injected)", 5);
        }
        Durability.Instance.FlushDirectory(path);
    }

    private void Hold(StorageFault step, string path)
    {
        if (HoldAt == step && Applies(path))
        {
            _held.TrySetResult();
            if (!_release.Wait(TimeSpan.FromSeconds(30)))
            {
                throw new IOException($"{step} held for 30 s and never released (test bug)");
            }
        }
    }
}
