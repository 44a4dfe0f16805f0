using System.Runtime.InteropServices;

namespace Postern.Server.Listening;

/// <summary>
/// The limit of open files (RLIMIT_NOFILE): every connection is one, and the default caps allow
/// 10,000 on port 25 plus 1,000 per submission listener, above the usual soft limit of 1,024. At
/// start the soft limit is raised to the hard one (what any process may do; the .NET runtime does
/// it too on Linux, so this mostly confirms and logs it); the systemd unit sets LimitNOFILE=65536.
/// </summary>
public static partial class OpenFiles
{
    private const int RlimitNofile = 7; // <asm-generic/resource.h>

    [StructLayout(LayoutKind.Sequential)]
    private struct Rlimit
    {
        public ulong Current;
        public ulong Max;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRlimit(int resource, out Rlimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRlimit(int resource, in Rlimit limit);

    /// <summary>Raises the soft limit to the hard one; returns (soft now, hard, soft before), or null off Linux or when it cannot be read.</summary>
    public static (long Soft, long Hard, long Before)? RaiseToHard()
    {
        if (!OperatingSystem.IsLinux() || GetRlimit(RlimitNofile, out var limit) != 0)
        {
            return null;
        }
        var before = limit.Current;
        if (limit.Current < limit.Max && SetRlimit(RlimitNofile, new Rlimit { Current = limit.Max, Max = limit.Max }) == 0)
        {
            limit.Current = limit.Max;
        }
        static long Clamp(ulong v) => v > long.MaxValue ? long.MaxValue : (long)v;
        return (Clamp(limit.Current), Clamp(limit.Max), Clamp(before));
    }
}
