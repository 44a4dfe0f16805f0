using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Server.Logging;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// AUTH PLAIN (RFC 4616) and LOGIN, over TLS only (SPEC §4). A failure answers 535 5.7.8 after
    /// a delay that doubles with each failure from the address; too many ban the address, its /64
    /// or the account (454 4.7.0), see <see cref="Accounts.AuthFailures"/>.
    /// </summary>
    private async Task AuthAsync(AuthCommand auth)
    {
        if (_user is not null)
        {
            Refuse("AUTH", Reply.AlreadyAuthenticated, RefusalReason.BadSequence);
            return;
        }
        if (!IsTls)
        {
            Refuse("AUTH", Reply.EncryptionRequiredForAuth, RefusalReason.TlsRequired);
            return;
        }
        if (_ctx.AuthFailures.Banned(RemoteIp, null) is { } ban)
        {
            Refuse("AUTH", Reply.AuthLockedOut, RefusalReason.Ban, $"{ban.Key} banned until {ban.Until:u}");
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
                if (!AuthDecoder.TryParsePlain(plain, out var credentials))
                {
                    Refuse("AUTH", Reply.AuthBadBase64.WithText("Malformed PLAIN response"), RefusalReason.Syntax);
                    return;
                }
                (authzid, user, password) = (credentials.AuthorizationId, credentials.AuthenticationId, credentials.Password);
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
                Refuse("AUTH", Reply.UnrecognizedAuthMechanism, RefusalReason.NotImplemented, $"mechanism {auth.Mechanism}");
                return;
        }
        user = user.Trim();
        string reason;
        if (!string.IsNullOrEmpty(authzid) && !authzid.Equals(user, StringComparison.OrdinalIgnoreCase))
        {
            // SPEC §4: acting as someone else is never allowed.
            reason = "authorization identity differs from authentication identity";
        }
        else if (_ctx.AuthFailures.Banned(RemoteIp, user) is { } accountBan)
        {
            // The account is under attack: refused without trying the password, so guessing goes nowhere.
            Refuse("AUTH", Reply.AuthLockedOut, RefusalReason.Ban, $"{accountBan.Key} banned until {accountBan.Until:u}");
            return;
        }
        else if (await _ctx.AddressBook.Accounts.VerifyAsync(user, password, CancellationToken.None))
        {
            // A success does not clear the address's failures: otherwise one valid account would let
            // its owner guess at everyone else's without limit.
            _user = user.ToLowerInvariant();
            _ctx.AuthFailures.RecordSuccess(RemoteIp, _user);
            Log.AuthOk(_ctx.Logger, _id, Ip, _user, auth.Mechanism);
            Send(Reply.AuthSucceeded);
            return;
        }
        else
        {
            reason = "invalid credentials";
        }
        // Failures count against an account only when it exists: random names must not fill the ban list.
        var (failures, delay, newBans) = _ctx.AuthFailures.RecordFailure(RemoteIp, _ctx.AddressBook.Accounts.Exists(user) ? user : null);
        // The delay runs from the failure, before its log line: whoever reads the line (a test moving
        // an injected clock) knows the wait has begun.
        var wait = Task.Delay(delay, _ctx.Time);
        Log.AuthFailed(_ctx.Logger, _id, Ip, user, auth.Mechanism, failures, reason);
        foreach (var b in newBans)
        {
            Log.Ban(_ctx.Logger, b.Key, Ip, b.Failures, b.Level, b.Until);
        }
        await FlushAsync();
        await wait;
        Refuse("AUTH", reason.StartsWith("authorization", StringComparison.Ordinal) ? Reply.AuthzidMismatch : Reply.AuthFailed, RefusalReason.AuthFailed, reason);
    }

    /// <summary>Decodes one base64 AUTH line (<see cref="AuthDecoder"/>); "*" cancels (RFC 4954 §4). Sends the refusal itself.</summary>
    private bool TryDecode(string? line, out string text)
    {
        if (line is null)
        {
            throw new IOException("client closed the connection during AUTH");
        }
        switch (AuthDecoder.DecodeLine(line, out text))
        {
            case AuthLineStatus.Cancelled:
                Refuse("AUTH", Reply.AuthCancelled, RefusalReason.AuthCancelled);
                return false;
            case AuthLineStatus.BadBase64:
                Refuse("AUTH", Reply.AuthBadBase64, RefusalReason.Syntax);
                return false;
            default:
                return true;
        }
    }
}
