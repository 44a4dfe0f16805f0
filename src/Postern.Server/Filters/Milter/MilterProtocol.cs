namespace Postern.Server.Filters.Milter;

/// <summary>
/// The constants of the Sendmail milter protocol, version 6 (Sendmail 8.14's libmilter, mfdef.h),
/// as Postfix's milter8 client speaks it. Every frame is a 4-byte big-endian length, then a
/// command byte, then length − 1 bytes of data; strings are NUL-terminated, integers big-endian.
/// </summary>
internal static class MilterProtocol
{
    /// <summary>The protocol version Postern offers: 6, the last one (Sendmail 8.14 and later).</summary>
    public const uint Version = 6;

    /// <summary>libmilter's MILTER_CHUNK_SIZE: the most body bytes in one SMFIC_BODY frame.</summary>
    public const int BodyChunk = 65_535;

    /// <summary>
    /// The largest reply frame read. libmilter sends a replaced body in chunks of at most 65,535
    /// bytes (1 MiB with SMFIP_MDS_1M, which Postern does not offer), a header or reply text is far
    /// smaller: 1 MiB and a little leaves room for any of them and bounds what a broken milter costs.
    /// </summary>
    public const int MaxReplyFrame = 1024 * 1024 + 1024;
}

/// <summary>Commands the MTA sends (SMFIC_*).</summary>
internal static class MilterCommand
{
    public const byte Abort = (byte)'A';
    public const byte Body = (byte)'B';
    public const byte Connect = (byte)'C';
    public const byte Macro = (byte)'D';
    public const byte EndOfBody = (byte)'E';
    public const byte Helo = (byte)'H';
    public const byte QuitNewConnection = (byte)'K';
    public const byte Header = (byte)'L';
    public const byte Mail = (byte)'M';
    public const byte EndOfHeaders = (byte)'N';
    public const byte OptionNegotiation = (byte)'O';
    public const byte Quit = (byte)'Q';
    public const byte Rcpt = (byte)'R';
    public const byte Data = (byte)'T';
    public const byte Unknown = (byte)'U';
}

/// <summary>Replies the milter sends (SMFIR_*).</summary>
internal static class MilterReplyCode
{
    public const byte AddRcpt = (byte)'+';
    public const byte DeleteRcpt = (byte)'-';
    public const byte AddRcptWithArgs = (byte)'2';
    public const byte Shutdown = (byte)'4';
    public const byte Accept = (byte)'a';
    public const byte ReplaceBody = (byte)'b';
    public const byte Continue = (byte)'c';
    public const byte Discard = (byte)'d';
    public const byte ChangeFrom = (byte)'e';
    public const byte ConnectionFail = (byte)'f';
    public const byte AddHeader = (byte)'h';
    public const byte InsertHeader = (byte)'i';
    public const byte ChangeHeader = (byte)'m';
    public const byte Progress = (byte)'p';
    public const byte Quarantine = (byte)'q';
    public const byte Reject = (byte)'r';
    public const byte Skip = (byte)'s';
    public const byte TempFail = (byte)'t';
    public const byte ReplyCode = (byte)'y';
    public const byte OptionNegotiation = (byte)'O';
}

/// <summary>The actions a milter may take (SMFIF_*), offered by the MTA and requested by the milter.</summary>
[Flags]
public enum MilterActions : uint
{
    None = 0,
    AddHeaders = 0x01,
    ChangeBody = 0x02,
    AddRcpt = 0x04,
    DeleteRcpt = 0x08,
    ChangeHeaders = 0x10,
    Quarantine = 0x20,
    ChangeFrom = 0x40,
    AddRcptWithArgs = 0x80,
    SetMacroList = 0x100,

    /// <summary>Every action Postern can carry out: all of version 6.</summary>
    All = 0x1FF,
}

/// <summary>
/// Protocol steps (SMFIP_*): the stages a milter does not want (No*), those it will not answer
/// (NoReply*), and the extensions it uses. Offered by the MTA, chosen by the milter.
/// </summary>
[Flags]
public enum MilterSteps : uint
{
    None = 0,
    NoConnect = 0x01,
    NoHelo = 0x02,
    NoMail = 0x04,
    NoRcpt = 0x08,
    NoBody = 0x10,
    NoHeaders = 0x20,
    NoEndOfHeaders = 0x40,
    NoReplyHeader = 0x80,
    NoUnknown = 0x100,
    NoData = 0x200,
    Skip = 0x400,
    RejectedRcpts = 0x800,
    NoReplyConnect = 0x1000,
    NoReplyHelo = 0x2000,
    NoReplyMail = 0x4000,
    NoReplyRcpt = 0x8000,
    NoReplyData = 0x10000,
    NoReplyUnknown = 0x20000,
    NoReplyEndOfHeaders = 0x40000,
    NoReplyBody = 0x80000,
    HeaderLeadingSpace = 0x100000,
    MaxData256K = 0x10000000,
    MaxData1M = 0x20000000,

    /// <summary>Steps of protocol version 2 (Postfix's MILTER8_V2_PROTO_MASK).</summary>
    Version2 = NoConnect | NoHelo | NoMail | NoRcpt | NoBody | NoHeaders | NoEndOfHeaders,

    /// <summary>
    /// What Postern offers with version 6: every stage may be left out or left unanswered, SKIP and
    /// leading space kept. Not offered: RejectedRcpts (Postern does not send refused recipients to
    /// milters) and the larger data sizes (bodies go in 65,535-byte chunks).
    /// </summary>
    Offered = Version2 | NoReplyHeader | NoUnknown | NoData | Skip | NoReplyConnect | NoReplyHelo | NoReplyMail
        | NoReplyRcpt | NoReplyData | NoReplyUnknown | NoReplyEndOfHeaders | NoReplyBody | HeaderLeadingSpace,
}

/// <summary>The stages a milter may give its own list of macros for (SMFIM_*, in the optneg reply).</summary>
public enum MilterStage
{
    Connect = 0,
    Helo = 1,
    Mail = 2,
    Rcpt = 3,
    Data = 4,
    EndOfMessage = 5,
    EndOfHeaders = 6,
}
