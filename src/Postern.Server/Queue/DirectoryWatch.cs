namespace Postern.Server.Queue;

/// <summary>
/// The loop of a directory others drop files into (the maildrop, control/): a pass now, then a pass
/// whenever a file system watcher sees a name appear, and at least every <c>interval</c> in case it
/// missed one (inotify drops events on overflow) or there is no watcher at all.
/// </summary>
internal static class DirectoryWatch
{
    /// <summary>
    /// Runs <paramref name="pass"/> until <paramref name="stop"/> fires. <paramref name="noWatcher"/>
    /// hears why there is no watcher (e.g. no inotify instance left): the passes alone still find every file.
    /// </summary>
    public static async Task RunAsync(string directory, string filter, TimeSpan interval, Func<CancellationToken, Task> pass, Action<Exception> noWatcher, CancellationToken stop)
    {
        using var signal = new SemaphoreSlim(0);
        FileSystemWatcher? watcher = null;
        try
        {
            watcher = new FileSystemWatcher(directory, filter) { NotifyFilter = NotifyFilters.FileName };
            watcher.Created += (_, _) => Wake(signal);
            watcher.Renamed += (_, _) => Wake(signal);
            watcher.EnableRaisingEvents = true;
        }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException or ArgumentException)
        {
            noWatcher(e);
            watcher?.Dispose();
            watcher = null;
        }
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await pass(stop).ConfigureAwait(false);
                try
                {
                    await signal.WaitAsync(interval, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            watcher?.Dispose();
        }
    }

    // One wake-up stands for any number of events: a pass takes every file there is.
    private static void Wake(SemaphoreSlim signal)
    {
        if (signal.CurrentCount == 0)
        {
            try
            {
                signal.Release();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }
}
