using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Win32.SafeHandles;
using Postern.Server.Storage;

namespace Postern.Server.Queue;

/// <summary>
/// What `postern sendmail` writes at the top of a maildrop file, before the message as the caller
/// gave it (docs/queue-format.md). The owner of the file, not anything written here, says who sent it.
/// </summary>
public sealed class MaildropHeader
{
    public int Version { get; set; } = 1;

    /// <summary>The envelope sender asked for with -f; null when none was (the server uses NAME@Hostname). "" is the null sender.</summary>
    public string? From { get; set; }

    /// <summary>The recipients given as arguments, as given (an address without a domain gets @Hostname).</summary>
    public List<string> Recipients { get; set; } = [];

    /// <summary>-t: the recipients of the To, Cc and Bcc fields (or their Resent- forms) are added.</summary>
    public bool ExtractRecipients { get; set; }

    /// <summary>-F: the full name of the From field the server adds when the message has none.</summary>
    public string? FullName { get; set; }
}

[JsonSourceGenerationOptions(WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(MaildropHeader))]
internal sealed partial class MaildropJson : JsonSerializerContext
{
}

/// <summary>
/// DATA/maildrop/: where `postern sendmail` leaves mail for the server, as Postfix's postdrop does
/// (docs/queue-format.md, docs/security.md). The directory is 1733: anyone may create a file in it,
/// nobody but its owner (the server) may list it, and the sticky bit keeps users from removing or
/// renaming each other's files. A file is written under <c>tmp.RANDOM</c>, fsync'd and renamed to
/// <c>RANDOM</c> (32 hex digits, 128 random bits, so that nobody can guess another's name and open
/// it); the rename is the commit. The kernel sets the file's owner, and that owner is who sent it.
/// </summary>
public static class Maildrop
{
    public const string DirectoryName = "maildrop";
    public const string TempPrefix = "tmp.";

    /// <summary>rwx-wx-wx plus the sticky bit (01733).</summary>
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute | UnixFileMode.StickyBit;

    /// <summary>
    /// 0644: the server runs as another user than most callers and must read the file. Nobody else can
    /// find it: the directory cannot be listed and the name cannot be guessed.
    /// </summary>
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>The first octets of every maildrop file.</summary>
    public static ReadOnlySpan<byte> Magic => "POSTERN-MAILDROP1 "u8;

    /// <summary>The longest header line (its JSON) a reader accepts: room for 10,000 long recipients.</summary>
    public const int MaxHeaderLength = 4 * 1024 * 1024;

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, DirectoryName);

    /// <summary>A final name: 32 lower-case hex digits.</summary>
    public static bool IsMessageName(string name) => name.Length == 32 && name.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>
    /// Creates DATA/maildrop/ with mode 1733 (or gives an existing one that mode), owned like the
    /// data directory, so that the server (which runs as the data directory's owner) may read and
    /// remove what is dropped there. Only the data directory's owner or root can do this.
    /// </summary>
    public static string Ensure(string dataDirectory)
    {
        var dir = PathIn(dataDirectory);
        Directory.CreateDirectory(dir);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(dir, DirectoryMode);
            if (UnixUser.EffectiveUid == 0 && FileStatus.OfLink(dataDirectory) is { Uid: not 0 and var owner } && FileStatus.OfLink(dir)?.Uid != owner)
            {
                FileOwner.Chown(dir, owner);
            }
        }
        return dir;
    }

    /// <summary>
    /// Starts a maildrop file: the header is written, the message follows through <see cref="MaildropWriter.Content"/>.
    /// The folder is held by descriptor and must be as the server makes it (1733, the data
    /// directory's owner's), and every name is made relative to it: root's sendmail writes into a
    /// folder another user owns, and a symbolic link swapped in for it must not send root's file
    /// (or a chmod) anywhere else. IOException when it is not.
    /// </summary>
    public static MaildropWriter Create(string maildropDirectory, MaildropHeader header)
    {
        var folder = DirectoryHandle.Open(maildropDirectory);
        try
        {
            var owner = FileStatus.Of(Path.GetDirectoryName(Path.GetFullPath(maildropDirectory))!)?.Uid;
            if (folder.Status.Mode != DirectoryMode || folder.Status.Uid != owner)
            {
                throw new IOException($"{maildropDirectory} is not as the server makes it (mode 1733, owned by the data directory's owner); nothing was written");
            }
            var name = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var handle = folder.CreateNew(TempPrefix + name, FileMode);
            var writer = new MaildropWriter(folder, name, TempPrefix + name, handle);
            writer.Content.Write(Magic);
            writer.Content.Write(JsonSerializer.SerializeToUtf8Bytes(header, MaildropJson.Default.MaildropHeader));
            writer.Content.WriteByte((byte)'\n');
            return writer;
        }
        catch
        {
            folder.Dispose();
            throw;
        }
    }

    /// <summary>Reads the header line; throws <see cref="InvalidDataException"/> for anything that is not one. Leaves the stream after the LF.</summary>
    public static MaildropHeader ReadHeader(Stream file)
    {
        var magic = new byte[Magic.Length];
        if (file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) < magic.Length || !magic.AsSpan().SequenceEqual(Magic))
        {
            throw new InvalidDataException("not a maildrop file (no POSTERN-MAILDROP1 header)");
        }
        var json = new MemoryStream();
        while (true)
        {
            var b = file.ReadByte();
            if (b < 0)
            {
                throw new InvalidDataException("the header line is not terminated");
            }
            if (b == '\n')
            {
                break;
            }
            if (json.Length >= MaxHeaderLength)
            {
                throw new InvalidDataException("the header line is too long");
            }
            json.WriteByte((byte)b);
        }
        MaildropHeader? header;
        try
        {
            header = JsonSerializer.Deserialize(json.GetBuffer().AsSpan(0, (int)json.Length), MaildropJson.Default.MaildropHeader);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"the header is not valid JSON: {e.Message}");
        }
        if (header is null || header.Version != 1 || header.Recipients is null || header.Recipients.Any(r => r is null))
        {
            throw new InvalidDataException("the header is not a version 1 maildrop header");
        }
        return header;
    }
}

/// <summary>One maildrop file being written by `postern sendmail`; <see cref="Commit"/> makes it the server's.</summary>
public sealed class MaildropWriter : IDisposable
{
    private readonly DirectoryHandle _folder;
    private readonly string _temp;
    private readonly SafeFileHandle _handle;
    private bool _done;

    internal MaildropWriter(DirectoryHandle folder, string name, string temp, SafeFileHandle handle)
    {
        _folder = folder;
        Name = name;
        _temp = temp;
        _handle = handle;
        Content = new BufferedStream(new FileStream(handle, FileAccess.ReadWrite, 1), 64 * 1024);
    }

    /// <summary>The final file name (what the server's log calls file=).</summary>
    public string Name { get; }

    /// <summary>Where the message octets go, after the header.</summary>
    public Stream Content { get; }

    /// <summary>Octets written so far, header included.</summary>
    public long Length => Content.Position;

    /// <summary>
    /// fsync, rename to the final name (in the folder held open), then make the rename durable: an
    /// fsync of the directory when the caller may open it (its owner, root), else syncfs(2) of its
    /// file system (a user may not open a directory it cannot read, and syncfs commits the
    /// directory entry with everything else).
    /// </summary>
    public void Commit()
    {
        Content.Flush();
        RandomAccess.FlushToDisk(_handle);
        _folder.Rename(_temp, Name);
        _done = true;
        try
        {
            Durability.Instance.FlushDirectory(_folder.Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Durability.SyncFileSystem(_handle);
        }
    }

    public void Dispose()
    {
        Content.Dispose();
        _handle.Dispose();
        if (!_done)
        {
            _folder.TryDelete(_temp);
        }
        _folder.Dispose();
    }
}
