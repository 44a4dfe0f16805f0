using System.Diagnostics;
using Postern.Server.Accounts;
using Postern.Server.Queue;
using Postern.Server.Storage;

namespace Postern.Server.Tests;

/// <summary>
/// `postern user add|passwd|del` rewrite the passwd file (temp file, rename); Dovecot's auth process
/// reads it through its group (README), so the rewrite must keep owner, group and mode (issue 11).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PasswdFileKeepsOwnership : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "postern-passwd-tests", Guid.NewGuid().ToString("N"));

    public PasswdFileKeepsOwnership() => Directory.CreateDirectory(_folder);

    private string Passwd => Path.Combine(_folder, "passwd");

    private static readonly UnixFileMode Mode0640 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;

    [Fact]
    public void ANewFileIsReadableByItsOwnerAlone()
    {
        PasswdFile.Update(Passwd, "alice@example.test", "{PLAIN}x", Durability.Instance);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Passwd));
    }

    [Fact]
    public void AddChangeAndDeleteKeepTheGroupAndMode()
    {
        PasswdFile.Update(Passwd, "alice@example.test", "{PLAIN}a", Durability.Instance);
        // Debian's group `mail` (8) stands for the group the admin gave the file; this test runs as root.
        Chown("root:mail", Passwd);
        File.SetUnixFileMode(Passwd, Mode0640);
        var before = Kept(Passwd);
        Assert.Equal("mail", UnixUser.GroupNameOf(before.Gid));

        PasswdFile.Update(Passwd, "bob@example.test", "{PLAIN}b", Durability.Instance);
        Assert.Equal(before, Kept(Passwd));
        PasswdFile.Update(Passwd, "alice@example.test", "{PLAIN}c", Durability.Instance);
        Assert.Equal(before, Kept(Passwd));
        PasswdFile.Update(Passwd, "bob@example.test", null, Durability.Instance);
        Assert.Equal(before, Kept(Passwd));
        Assert.Equal(["alice@example.test"], PasswdFile.Load(Passwd).Keys);
        Assert.Empty(Directory.GetFiles(_folder, "*.tmp"));
    }

    [Fact]
    public void APasswordChangedWithinOneSecondStillMovesTheModificationTimeOnByASecond()
    {
        // Dovecot's passwd-file re-reads the file only when its mtime (in seconds) or size changed;
        // a new hash is as long as the old one. Found by CI: a change right after a login was missed.
        PasswdFile.Update(Passwd, "alice@example.test", "{PLAIN}aaaa", Durability.Instance);
        var seconds = new List<long> { new DateTimeOffset(File.GetLastWriteTimeUtc(Passwd)).ToUnixTimeSeconds() };
        foreach (var hash in new[] { "{PLAIN}bbbb", "{PLAIN}cccc", "{PLAIN}dddd" })
        {
            PasswdFile.Update(Passwd, "alice@example.test", hash, Durability.Instance);
            seconds.Add(new DateTimeOffset(File.GetLastWriteTimeUtc(Passwd)).ToUnixTimeSeconds());
        }
        for (var i = 1; i < seconds.Count; i++)
        {
            Assert.True(seconds[i] > seconds[i - 1], $"mtime seconds {string.Join(", ", seconds)}");
        }
    }

    [Fact]
    public void TheOwnerIsKeptWhenRootRewritesAnotherUsersFile()
    {
        PasswdFile.Update(Passwd, "alice@example.test", "{PLAIN}a", Durability.Instance);
        Chown("nobody:nogroup", Passwd);
        var before = Kept(Passwd);
        Assert.Equal("nobody", UnixUser.NameOf(before.Uid));

        PasswdFile.Update(Passwd, "alice@example.test", "{PLAIN}b", Durability.Instance);
        Assert.Equal(before, Kept(Passwd));
    }

    /// <summary>What a rewrite must keep: owner, group and mode (size and times change with the content).</summary>
    private static (uint Uid, uint Gid, UnixFileMode Mode) Kept(string path) =>
        FileStatus.Of(path) is { } s ? (s.Uid, s.Gid, s.Mode) : throw new FileNotFoundException(path);

    private static void Chown(string owner, string path)
    {
        using var p = Process.Start("chown", [owner, path])!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
