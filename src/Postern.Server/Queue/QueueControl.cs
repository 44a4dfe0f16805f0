namespace Postern.Server.Queue;

/// <summary>
/// The administrator's hand on the queue, kept in files so that it works whether or not the server
/// runs: <c>queue/hold/ID</c> (empty) marks a message on hold; the delivery workers leave it alone
/// until the marker is gone (<c>postern queue hold|release</c>).
/// </summary>
public sealed class QueueControl
{
    public QueueControl(string queueDirectory)
    {
        HoldDir = Path.Combine(queueDirectory, "hold");
        Directory.CreateDirectory(HoldDir);
    }

    public string HoldDir { get; }

    public bool IsHeld(QueueId id) => File.Exists(Path.Combine(HoldDir, id.Value));

    /// <summary>Puts a message on hold; false when it already was.</summary>
    public bool Hold(QueueId id)
    {
        var path = Path.Combine(HoldDir, id.Value);
        if (File.Exists(path))
        {
            return false;
        }
        File.WriteAllBytes(path, []);
        return true;
    }

    /// <summary>Takes a message off hold; false when it was not held.</summary>
    public bool Release(QueueId id)
    {
        var path = Path.Combine(HoldDir, id.Value);
        if (!File.Exists(path))
        {
            return false;
        }
        File.Delete(path);
        return true;
    }
}
