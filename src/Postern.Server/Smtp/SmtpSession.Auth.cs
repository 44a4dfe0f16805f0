using System.Text;
using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Server.Logging;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// AUTH PLAIN (RFC 4616) and LOGIN, over TLS only (SPEC §4). A failure answers 535 5.7.8 after
    /// a delay that doubles with each failure from the IP; too many lock the IP out (454 4.7.0).
    /// </summary>
    private async Task AuthAsync(AuthCommand auth)
    {
        if (_user is not null)
        {
            Refuse("AUTH", Reply.AlreadyAuthenticated);
            return;
        }
        if (!IsTls)
        {
            Refuse("AUTH", Reply.EncryptionRequiredForAuth);
            return;
        }
        if (_ctx.AuthFailures.LockedUntil(RemoteIp) is not null)
        {
            Refuse("AUTH", Reply.AuthLockedOut, "ip locked out after repeated failures");
            return;
        }
        string? authzid = null, user, password;
        switch (auth.Mechanism)
        {
            case "PLAIN":
                var response = auth.InitialResponse;
                if (response is null)
                {
                    Send(new SmtpReply(334, null, ""));
                    response = await ReadAuthLineAsync();
                }
                if (!TryDecode(response, out var plain))
                {
                    return;
                }
                // RFC 4616 §2: [authzid] NUL authcid NUL passwd
                var parts = plain.Split('\0');
                if (parts.Length != 3)
                {
                    Refuse("AUTH", Reply.AuthBadBase64.WithText("Malformed PLAIN response"));
                    return;
                }
                (authzid, user, password) = (parts[0], parts[1], parts[2]);
                break;
            case "LOGIN":
                string? login = auth.InitialResponse;
                if (login is null)
                {
                    Send(new SmtpReply(334, null, "VXNlcm5hbWU6")); // "Username:"
                    login = await ReadAuthLineAsync();
                }
                if (!TryDecode(login, out user))
                {
                    return;
                }
                Send(new SmtpReply(334, null, "UGFzc3dvcmQ6")); // "Password:"
                if (!TryDecode(await ReadAuthLineAsync(), out password))
                {
                    return;
                }
                break;
            default:
                Refuse("AUTH", Reply.UnrecognizedAuthMechanism);
                return;
        }
        user = user.Trim();
        string reason;
        if (!string.IsNullOrEmpty(authzid) && !authzid.Equals(user, StringComparison.OrdinalIgnoreCase))
        {
            // SPEC §4: acting as someone else is never allowed.
            reason = "authorization identity differs from authentication identity";
        }
        else if (await _ctx.AddressBook.Accounts.VerifyAsync(user, password, CancellationToken.None))
        {
            // A success does not clear the address's failures: otherwise one valid account would let
            // its owner guess at everyone else's without limit.
            _user = user.ToLowerInvariant();
            Log.AuthOk(_ctx.Logger, _id, Ip, _user, auth.Mechanism);
            Send(Reply.AuthSucceeded);
            return;
        }
        else
        {
            reason = "invalid credentials";
        }
        var (failures, delay, lockedUntil) = _ctx.AuthFailures.RecordFailure(RemoteIp);
        Log.AuthFailed(_ctx.Logger, _id, Ip, user, auth.Mechanism, failures, reason);
        if (lockedUntil is { } until && failures == Options.Accounts.MaxAuthFailures)
        {
            Log.AuthLockout(_ctx.Logger, Ip, failures, until);
        }
        await FlushAsync();
        await Task.Delay(delay, _ctx.Time);
        Refuse("AUTH", reason.StartsWith("authorization", StringComparison.Ordinal) ? Reply.AuthzidMismatch : Reply.AuthFailed, reason);
    }

    /// <summary>Decodes one base64 AUTH line; "*" cancels (RFC 4954 §4). Sends the refusal itself.</summary>
    private bool TryDecode(string? line, out string text)
    {
        text = "";
        if (line is null)
        {
            throw new IOException("client closed the connection during AUTH");
        }
        if (line == "*")
        {
            Refuse("AUTH", Reply.AuthCancelled);
            return false;
        }
        if (line == "=")
        {
            return true;
        }
        try
        {
            text = new UTF8Encoding(false, true).GetString(Convert.FromBase64String(line));
            return true;
        }
        catch (Exception e) when (e is FormatException or DecoderFallbackException)
        {
            Refuse("AUTH", Reply.AuthBadBase64);
            return false;
        }
    }
}
