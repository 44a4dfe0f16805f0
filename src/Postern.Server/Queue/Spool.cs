using System.Buffers;
using System.Text;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;
using Postern.Server.Storage;

namespace Postern.Server.Queue;

/// <summary>A committed message as read back from the spool.</summary>
public sealed record SpooledMessage(QueueId Id, Envelope Envelope, string Path, long MessageOffset, long MessageLength);

/// <summary>
/// The durable queue (SPEC §6, docs/queue-format.md). One file per message:
/// <c>POSTERN1 ENVELOPE-JSON LF</c> followed by the message octets. A message is written under
/// queue/tmp/, fsync'd, then renamed into queue/messages/; the rename followed by an fsync of the
/// directory is the commit, and only then is 250 said. Renames of concurrent sessions are grouped so
/// that one directory fsync covers many commits. A file that cannot be read is moved to
/// queue/corrupt/, never deleted.
/// </summary>
public sealed class Spool : IAsyncDisposable
{
    public static ReadOnlySpan<byte> Magic => "POSTERN1 "u8;
    // Limits.MaxRecipients (at most 10,000) keeps every envelope Postern writes well below this.
    private const int MaxEnvelopeLength = 16 * 1024 * 1024;

    private readonly IDurability _durability;
    private readonly Channel<PendingCommit> _commits = Channel.CreateUnbounded<PendingCommit>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _committer;

    public Spool(string queueDirectory, IDurability? durability = null)
    {
        Root = queueDirectory;
        _durability = durability ?? Storage.Durability.Instance;
        foreach (var d in new[] { Root, TmpDir, MessagesDir, StateDir, CorruptDir })
        {
            Directory.CreateDirectory(d);
        }
        _committer = Task.Factory.StartNew(CommitLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public string Root { get; }
    public string TmpDir => Path.Combine(Root, "tmp");
    public string MessagesDir => Path.Combine(Root, "messages");
    public string StateDir => Path.Combine(Root, "state");
    public string CorruptDir => Path.Combine(Root, "corrupt");
    public IDurability Durability => _durability;

    public string MessagePath(QueueId id) => Path.Combine(MessagesDir, id.Value);
    public string StatePath(QueueId id) => Path.Combine(StateDir, id.Value);

    /// <summary>
    /// Starts a new message; the envelope is written first, the message streams after it.
    /// <paramref name="room"/> spaces after the envelope's JSON leave room for what is only known at
    /// the end of the data (the authentication results): <see cref="SpoolWriter.RewriteEnvelope"/>
    /// writes the envelope again in place before the commit. JSON readers ignore the spaces.
    /// </summary>
    public SpoolWriter Create(Envelope envelope, int room = 0)
    {
        var id = new QueueId(envelope.Id);
        var path = Path.Combine(TmpDir, id.Value);
        var handle = SafeFile.CreateNew(path);
        var writer = new SpoolWriter(this, id, path, handle);
        try
        {
            writer.Write(Magic);
            var json = EnvelopeCodec.Encode(envelope);
            writer.Write(json);
            writer.GetSpan(room)[..room].Fill((byte)' ');
            writer.Advance(room);
            writer.Write("\n"u8);
            writer.EnvelopeRoom = json.Length + room;
            writer.MessageStart = writer.Length;
        }
        catch
        {
            writer.Abort();
            throw;
        }
        return writer;
    }

    /// <summary>Renames a flushed temp file into messages/ and waits for the grouped directory fsync.</summary>
    internal Task CommitAsync(QueueId id, string tmpPath)
    {
        var pending = new PendingCommit(id, tmpPath, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_commits.Writer.TryWrite(pending))
        {
            throw new IOException("the spool is closed");
        }
        return pending.Done.Task;
    }

    private async Task CommitLoop()
    {
        var batch = new List<PendingCommit>(256);
        while (await _commits.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < 1024 && _commits.Reader.TryRead(out var p))
            {
                batch.Add(p);
            }
            var moved = new List<PendingCommit>(batch.Count);
            foreach (var p in batch)
            {
                try
                {
                    File.Move(p.TmpPath, MessagePath(p.Id));
                    moved.Add(p);
                }
                catch (Exception e)
                {
                    SafeFile.TryDelete(p.TmpPath);
                    p.Done.TrySetException(e);
                }
            }
            if (moved.Count == 0)
            {
                continue;
            }
            try
            {
                // One fsync of the directory makes every rename of the batch durable.
                _durability.FlushDirectory(MessagesDir);
                foreach (var p in moved)
                {
                    p.Done.TrySetResult();
                }
            }
            catch (Exception e)
            {
                // Not acknowledged, so not kept: the client will retry. Removing it avoids a
                // duplicate; if the removal fails too, a duplicate delivery is the worst case.
                foreach (var p in moved)
                {
                    SafeFile.TryDelete(MessagePath(p.Id));
                    p.Done.TrySetException(e);
                }
            }
        }
    }

    /// <summary>Removes files under tmp/: they were never acknowledged (start-up only).</summary>
    public int CleanTemporary()
    {
        var n = 0;
        foreach (var f in Directory.EnumerateFiles(TmpDir))
        {
            SafeFile.TryDelete(f);
            n++;
        }
        return n;
    }

    /// <summary>Ids of all committed messages, oldest first.</summary>
    public List<QueueId> ListIds()
    {
        var ids = new List<QueueId>();
        foreach (var f in Directory.EnumerateFiles(MessagesDir))
        {
            var name = Path.GetFileName(f);
            if (QueueId.IsValid(name))
            {
                ids.Add(new QueueId(name));
            }
        }
        ids.Sort((a, b) => string.CompareOrdinal(a.Value, b.Value));
        return ids;
    }

    /// <summary>Reads a message's envelope. Throws <see cref="InvalidDataException"/> when the file is unreadable, <see cref="FileNotFoundException"/> when gone.</summary>
    public SpooledMessage Read(QueueId id)
    {
        var path = MessagePath(id);
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var length = RandomAccess.GetLength(handle);
        // Read only as far as the envelope's LF: 8 KiB covers almost every envelope.
        var buffer = ArrayPool<byte>.Shared.Rent(8192);
        try
        {
            var read = 0;
            var lf = -1;
            while (lf < 0)
            {
                if (read == buffer.Length)
                {
                    if (buffer.Length >= MaxEnvelopeLength)
                    {
                        throw new InvalidDataException("envelope line not terminated");
                    }
                    var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 4);
                    buffer.AsSpan(0, read).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var n = RandomAccess.Read(handle, buffer.AsSpan(read), read);
                if (n == 0)
                {
                    throw new InvalidDataException("envelope line not terminated");
                }
                lf = buffer.AsSpan(read, n).IndexOf((byte)'\n');
                if (lf >= 0)
                {
                    lf += read;
                }
                read += n;
                if (read >= Magic.Length && !buffer.AsSpan(0, Magic.Length).SequenceEqual(Magic))
                {
                    throw new InvalidDataException("missing POSTERN1 header");
                }
            }
            var head = buffer.AsSpan(0, read);
            if (!head.StartsWith(Magic))
            {
                throw new InvalidDataException("missing POSTERN1 header");
            }
            Envelope envelope;
            try
            {
                envelope = EnvelopeCodec.Decode(head[Magic.Length..lf]);
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new InvalidDataException($"envelope is not valid JSON: {e.Message}");
            }
            if (envelope.Id != id.Value || envelope.Recipients is null || envelope.Recipients.Count == 0 || envelope.Recipients.Any(r => r is null))
            {
                throw new InvalidDataException("envelope does not match its file name or has no recipients");
            }
            return new SpooledMessage(id, envelope, path, lf + 1, length - (lf + 1));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Opens the message octets (after the envelope) for reading.</summary>
    public static Stream OpenMessage(SpooledMessage m)
    {
        var fs = new FileStream(m.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.SequentialScan);
        fs.Position = m.MessageOffset;
        return fs;
    }

    /// <summary>Moves an unreadable file aside to corrupt/ (never deletes it).</summary>
    public string MoveToCorrupt(QueueId id)
    {
        var target = Path.Combine(CorruptDir, id.Value);
        if (File.Exists(target))
        {
            target += "." + DateTime.UtcNow.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        File.Move(MessagePath(id), target);
        _durability.FlushDirectory(CorruptDir);
        var state = StatePath(id);
        if (File.Exists(state))
        {
            File.Move(state, target + ".state");
        }
        return target;
    }

    /// <summary>
    /// A message's state file, or null when it has none (delivery has not begun). A file that is there
    /// but cannot be read whole throws <see cref="InvalidDataException"/>, never reads as "no state":
    /// that would deliver again to every recipient already delivered. The file is one JSON object, so a
    /// file cut short anywhere (its closing brace is the end marker) or padded with zeros after a crash
    /// never parses; what parses must also make sense (<see cref="EnvelopeCodec.DecodeState"/>).
    /// </summary>
    public DeliveryState? ReadState(QueueId id)
    {
        var p = StatePath(id);
        // Most messages never get a state file: look before reading, exceptions are not cheap.
        if (!File.Exists(p))
        {
            return null;
        }
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(p);
        }
        catch (FileNotFoundException)
        {
            return null; // removed meanwhile (the message left the queue)
        }
        return EnvelopeCodec.DecodeState(bytes);
    }

    /// <summary>Where an unreadable state file of <paramref name="id"/> goes (and stays) in corrupt/.</summary>
    public string CorruptStatePath(QueueId id) => Path.Combine(CorruptDir, id.Value + ".state");

    /// <summary>The state files of <paramref name="id"/> moved aside to corrupt/, oldest first (for `postern queue show`).</summary>
    public List<string> CorruptStates(QueueId id)
    {
        var found = Directory.EnumerateFiles(CorruptDir, id.Value + ".state*").ToList();
        found.Sort(StringComparer.Ordinal);
        return found;
    }

    /// <summary>
    /// Moves the state file of a message aside to corrupt/ (never deletes it) and leaves the message
    /// where it is; returns where it went. The caller holds the message (see <see cref="QueueControl.SetAsideUnreadableState"/>).
    /// </summary>
    public string MoveStateToCorrupt(QueueId id)
    {
        var target = CorruptStatePath(id);
        if (File.Exists(target))
        {
            target += "." + DateTime.UtcNow.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        File.Move(StatePath(id), target);
        _durability.FlushDirectory(CorruptDir);
        _durability.FlushDirectory(StateDir);
        return target;
    }

    public void WriteState(QueueId id, DeliveryState state) =>
        SafeFile.WriteAllBytes(StatePath(id), EnvelopeCodec.EncodeState(state), _durability);

    /// <summary>Removes a message once every recipient is done (or on `queue delete`). Returns false if it was already gone.</summary>
    public bool Remove(QueueId id)
    {
        var existed = File.Exists(MessagePath(id));
        SafeFile.TryDelete(MessagePath(id));
        SafeFile.TryDelete(StatePath(id));
        return existed;
    }

    public async ValueTask DisposeAsync()
    {
        _commits.Writer.TryComplete();
        await _committer.ConfigureAwait(false);
    }

    private sealed record PendingCommit(QueueId Id, string TmpPath, TaskCompletionSource Done);
}

/// <summary>
/// Streams one message into its temp file. An <see cref="IBufferWriter{T}"/> so that the DATA and
/// BDAT readers write straight into it; a write error is remembered and reported at commit, so
/// the session can keep reading to the end of the data (the dialogue stays in step) and then refuse.
/// </summary>
public sealed class SpoolWriter : IBufferWriter<byte>, IDisposable
{
    private const int BufferSize = 16 * 1024;
    private readonly Spool _spool;
    private readonly string _path;
    private SafeFileHandle? _handle;
    private byte[] _buffer;
    private int _used;
    private long _fileOffset;

    internal SpoolWriter(Spool spool, QueueId id, string path, SafeFileHandle handle)
    {
        _spool = spool;
        Id = id;
        _path = path;
        _handle = handle;
        _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
    }

    public QueueId Id { get; }

    /// <summary>Where the message octets begin (after the envelope line).</summary>
    public long MessageStart { get; internal set; }

    /// <summary>Octets between the magic and the LF that an envelope may fill (its JSON and the room after it).</summary>
    internal int EnvelopeRoom { get; set; }

    /// <summary>
    /// Writes <paramref name="envelope"/> over the one written at the start, before the commit. It
    /// never fails silently (issue 12: a quarantine's Folder was lost that way): when it fits the room
    /// left at <see cref="Spool.Create"/> it is written in place, padded with spaces; when it does not,
    /// the file is written again (the new envelope, then the message copied from the old file, in
    /// bounded buffers) and takes the old one's place under tmp/. A write error on the way is kept
    /// as <see cref="Failure"/>, so that <see cref="CommitAsync"/> throws <see cref="IOException"/>
    /// and nothing is acknowledged. <see cref="MessageStart"/> may move.
    /// </summary>
    public void RewriteEnvelope(Envelope envelope)
    {
        var json = EnvelopeCodec.Encode(envelope);
        if (_handle is null)
        {
            throw new InvalidOperationException("the spool file is already committed or dropped");
        }
        if (json.Length > EnvelopeRoom)
        {
            Rewrite(json);
            return;
        }
        var bytes = new byte[EnvelopeRoom];
        json.CopyTo(bytes, 0);
        bytes.AsSpan(json.Length).Fill((byte)' ');
        var at = (long)Spool.Magic.Length;
        // Part of it may already be in the file, part still in the buffer.
        var inFile = (int)Math.Clamp(_fileOffset - at, 0, bytes.Length);
        if (inFile > 0 && Failure is null)
        {
            try
            {
                RandomAccess.Write(_handle, bytes.AsSpan(0, inFile), at);
            }
            catch (IOException e)
            {
                Failure = e;
            }
        }
        if (inFile < bytes.Length)
        {
            bytes.AsSpan(inFile).CopyTo(_buffer.AsSpan((int)(at + inFile - _fileOffset)));
        }
    }

    /// <summary>The envelope outgrew its room: a new temp file with it, the message copied after it, renamed over the old one.</summary>
    private void Rewrite(byte[] json)
    {
        FlushBuffer();
        if (Failure is not null)
        {
            return; // the message is refused at the commit anyway
        }
        var old = _handle!;
        var copy = _path + ".envelope";
        SafeFileHandle? fresh = null;
        try
        {
            fresh = SafeFile.CreateNew(copy);
            // Some room again, for a later rewrite of the same size.
            var room = Math.Max(EnvelopeRoom - json.Length, 0) + 1024;
            var head = new byte[Spool.Magic.Length + json.Length + room + 1];
            Spool.Magic.CopyTo(head);
            json.CopyTo(head, Spool.Magic.Length);
            head.AsSpan(Spool.Magic.Length + json.Length, room).Fill((byte)' ');
            head[^1] = (byte)'\n';
            _spool.Durability.BeforeWrite(copy, head.Length);
            RandomAccess.Write(fresh, head, 0);
            var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                long from = MessageStart, to = head.Length;
                int n;
                while ((n = RandomAccess.Read(old, chunk, from)) > 0)
                {
                    _spool.Durability.BeforeWrite(copy, n);
                    RandomAccess.Write(fresh, chunk.AsSpan(0, n), to);
                    from += n;
                    to += n;
                }
                // The old file is gone from under this name once the rename is done; its handle too.
                File.Move(copy, _path, overwrite: true);
                old.Dispose();
                _handle = fresh;
                fresh = null;
                _fileOffset = to;
                MessageStart = head.Length;
                EnvelopeRoom = json.Length + room;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }
        }
        catch (IOException e)
        {
            Failure = e;
        }
        finally
        {
            if (fresh is not null)
            {
                fresh.Dispose();
                SafeFile.TryDelete(copy);
            }
        }
    }

    /// <summary>Octets written so far, envelope included.</summary>
    public long Length => _fileOffset + _used;

    /// <summary>The first write error, if any; the message will not be committed.</summary>
    public IOException? Failure { get; private set; }

    public void Advance(int count) => _used += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_used);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_used);
    }

    private void Ensure(int sizeHint)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_buffer.Length - _used >= sizeHint)
        {
            return;
        }
        FlushBuffer();
        if (_buffer.Length < sizeHint)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(sizeHint);
        }
    }

    private void FlushBuffer()
    {
        if (_used == 0)
        {
            return;
        }
        if (Failure is null && _handle is not null)
        {
            try
            {
                _spool.Durability.BeforeWrite(_path, _used);
                RandomAccess.Write(_handle, _buffer.AsSpan(0, _used), _fileOffset);
            }
            catch (IOException e)
            {
                Failure = e;
            }
        }
        _fileOffset += _used;
        _used = 0;
    }

    /// <summary>
    /// The message as written so far, read back through the writer's own handle (the file is
    /// locked against other opens) before the commit: for DKIM and DMARC at the end of the data.
    /// </summary>
    public Stream ReadMessage()
    {
        FlushBuffer();
        if (_handle is null || Failure is not null)
        {
            throw Failure ?? new IOException("the spool file is closed");
        }
        return new HandleReader(_handle, MessageStart, _fileOffset);
    }

    /// <summary>A read-only stream over part of an open file, by positioned reads.</summary>
    private sealed class HandleReader(SafeFileHandle handle, long start, long end) : Stream
    {
        private long _offset;
        private long At
        {
            get => start + _offset;
            set => _offset = value - start;
        }

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => end - start;

        public override long Position
        {
            get => At - start;
            set => At = start + Math.Clamp(value, 0, end - start);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = RandomAccess.Read(handle, buffer[..(int)Math.Min(buffer.Length, end - At)], At);
            At += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => Position + offset, _ => Length + offset };
            return Position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Flushes, fsyncs and commits. Throws <see cref="IOException"/> if the message is not durable.</summary>
    public async Task CommitAsync()
    {
        FlushBuffer();
        if (Failure is not null)
        {
            Abort();
            throw Failure;
        }
        try
        {
            _spool.Durability.FlushFile(_handle!, _path);
        }
        catch
        {
            Abort();
            throw;
        }
        _handle!.Dispose();
        _handle = null;
        Release();
        await _spool.CommitAsync(Id, _path).ConfigureAwait(false);
    }

    /// <summary>Drops the message: nothing was acknowledged.</summary>
    public void Abort()
    {
        _handle?.Dispose();
        _handle = null;
        SafeFile.TryDelete(_path);
        Release();
    }

    private void Release()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }

    public void Dispose()
    {
        if (_handle is not null)
        {
            Abort();
        }
    }

    /// <summary>Writes text as UTF-8 (headers Postern adds).</summary>
    public void WriteText(string s) => Encoding.UTF8.GetBytes(s, this);
}
