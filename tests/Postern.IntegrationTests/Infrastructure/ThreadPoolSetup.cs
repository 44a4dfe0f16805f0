using System.Runtime.CompilerServices;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// The in-process servers of these tests block pool threads in fsync(2) and password hashing as
/// `postern serve` does, and many run at once: give the pool the same head start `serve` gives
/// itself (ServeCommand), or a burst waits seconds for the pool's slow thread injection.
/// </summary>
internal static class ThreadPoolSetup
{
    [ModuleInitializer]
    internal static void Initialize()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 16 * Environment.ProcessorCount), io);
    }
}
