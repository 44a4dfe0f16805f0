using System.Text;
using Postern.Server.Storage;

namespace Postern.Server.Delivery;

/// <summary>
/// Delivery into a Maildir (SPEC §3), the layout Dovecot reads with
/// <c>mail_location = maildir:DATA/mail/%d/%n</c>. A transaction per message: write under tmp/,
/// fsync, rename into new/, fsync new/ — only then is the recipient delivered.
/// </summary>
public sealed class Maildir(string mailRoot, string hostname, IDurability durability)
{
    private static long _counter;

    /// <summary>DATA/mail/DOMAIN/LOCALPART for an account address (already validated as a safe path).</summary>
    public string PathFor(string account)
    {
        var at = account.LastIndexOf('@');
        var local = account[..at].ToLowerInvariant();
        var domain = account[(at + 1)..].ToLowerInvariant();
        if (local.Contains('/') || domain.Contains('/') || local.StartsWith('.') || domain.StartsWith('.'))
        {
            throw new InvalidOperationException($"unsafe mailbox name {account}");
        }
        return Path.Combine(mailRoot, domain, local);
    }

    /// <summary>Creates a Maildir and makes each new directory entry durable, up to the mail root.</summary>
    private void CreateDurably(string box)
    {
        var created = new List<string>();
        for (var d = box; d.Length > mailRoot.Length && !Directory.Exists(d); d = Path.GetDirectoryName(d)!)
        {
            created.Add(d);
        }
        foreach (var sub in new[] { "tmp", "new", "cur" })
        {
            Directory.CreateDirectory(Path.Combine(box, sub));
        }
        durability.FlushDirectory(box);
        foreach (var d in created)
        {
            durability.FlushDirectory(Path.GetDirectoryName(d)!);
        }
    }

    /// <summary>
    /// Delivers one copy: a Return-Path and Delivered-To header, <paramref name="trace"/> (header
    /// fields the receiving side made, such as Authentication-Results), then the message as received.
    /// </summary>
    public string Deliver(string account, string returnPath, Stream message, long size, string? folder = null, string? trace = null)
    {
        var root = PathFor(account);
        var box = folder is null ? root : Path.Combine(root, "." + folder);
        var tmp = Path.Combine(box, "tmp");
        var newDir = Path.Combine(box, "new");
        if (!Directory.Exists(newDir))
        {
            CreateDurably(box);
        }
        // RFC 5321 §4.4: the delivering server adds Return-Path.
        var head = Encoding.UTF8.GetBytes($"Return-Path: <{returnPath}>\r\nDelivered-To: {account}\r\n{trace}");
        var total = head.Length + size;
        var now = DateTimeOffset.UtcNow;
        // Maildir unique name: time, microseconds, pid, a counter, the host; S= lets Dovecot skip a stat.
        var name = string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{now.ToUnixTimeSeconds()}.M{now.Ticks / 10 % 1_000_000}P{Environment.ProcessId}Q{Interlocked.Increment(ref _counter)}.{hostname},S={total}");
        var tmpPath = Path.Combine(tmp, name);
        try
        {
            using (var handle = SafeFile.CreateNew(tmpPath, UnixFileMode.UserRead | UnixFileMode.UserWrite))
            {
                durability.BeforeWrite(tmpPath, head.Length);
                RandomAccess.Write(handle, head, 0);
                long offset = head.Length;
                var buffer = new byte[64 * 1024];
                int n;
                while ((n = message.Read(buffer)) > 0)
                {
                    durability.BeforeWrite(tmpPath, n);
                    RandomAccess.Write(handle, buffer.AsSpan(0, n), offset);
                    offset += n;
                }
                durability.FlushFile(handle, tmpPath);
            }
            var final = Path.Combine(newDir, name);
            File.Move(tmpPath, final);
            durability.FlushDirectory(newDir);
            return final;
        }
        catch
        {
            SafeFile.TryDelete(tmpPath);
            throw;
        }
    }
}
