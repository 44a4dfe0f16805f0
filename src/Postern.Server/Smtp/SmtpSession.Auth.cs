using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Server.Logging;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// AUTH PLAIN (RFC 4616) and LOGIN, over TLS only (SPEC §4). A failure answers 535 5.7.8 after
    /// a delay that doubles with each failure from the address; too many ban the address or its /64
    /// (454 4.7.0) or lock the account (535 as for an unknown name, its password not tried), see
    /// <see cref="Accounts.AuthFailures"/>. The attempt is reserved before the password is checked,
    /// so sessions racing each other get no more checks than the limits allow.
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
        if (_ctx.AuthFailures.Banned(RemoteIp) is { } ban)
        {
            Refuse("AUTH", Reply.AuthLockedOut, RefusalReason.Ban, $"{ban.Key} banned until {ban.Until:u}");
            return;
        }
        var exchangeStarted = _ctx.Time.GetUtcNow();
        string? authzid = null, user, password;
        switch (auth.Mechanism)
        {
            case "PLAIN":
                var response = auth.InitialResponse;
                if (response is null)
                {
                    Send(new SmtpReply(334, null, ""));
                    response = await ReadAuthLineAsync(exchangeStarted);
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
                    login = await ReadAuthLineAsync(exchangeStarted);
                }
                if (!TryDecode(login, out user))
                {
                    return;
                }
                Send(new SmtpReply(334, null, "UGFzc3dvcmQ6")); // "Password:"
                if (!TryDecode(await ReadAuthLineAsync(exchangeStarted), out password))
                {
                    return;
                }
                break;
            default:
                Refuse("AUTH", Reply.UnrecognizedAuthMechanism, RefusalReason.NotImplemented, $"mechanism {auth.Mechanism}");
                return;
        }
        user = user.Trim();
        var accounts = _ctx.AddressBook.Accounts;
        // Reserved on the address and the account before anything is checked (issue 12: racing
        // sessions got four times the limit). Names that are not accounts count against the address only.
        using var attempt = _ctx.AuthFailures.Begin(RemoteIp, accounts.Exists(user) ? user : null);
        if (attempt.Verdict == Accounts.AuthFailures.Verdict.AddressLimit)
        {
            // The address's own limit: saying so tells nothing about any account.
            Refuse("AUTH", Reply.AuthLockedOut, RefusalReason.Ban, $"{attempt.LimitKey} at its limit of failures and attempts in flight");
            return;
        }
        string reason;
        if (!string.IsNullOrEmpty(authzid) && !authzid.Equals(user, StringComparison.OrdinalIgnoreCase))
        {
            // SPEC §4: acting as someone else is never allowed.
            reason = "authorization identity differs from authentication identity";
        }
        else if (attempt.Verdict == Accounts.AuthFailures.Verdict.AccountLocked)
        {
            // The account is under attack: its password is not tried, so guessing goes nowhere, and
            // the answer is an unknown name's (same work, same delay, same 535), so a lockout does
            // not tell which names exist.
            await accounts.PretendToVerifyAsync(password, CancellationToken.None);
            reason = $"account locked ({attempt.LimitKey})";
        }
        else if (await accounts.VerifyAsync(user, password, CancellationToken.None))
        {
            // A success does not clear the address's failures: otherwise one valid account would let
            // its owner guess at everyone else's without limit.
            _user = user.ToLowerInvariant();
            attempt.Succeeded(_user);
            Log.AuthOk(_ctx.Logger, _id, Ip, _user, auth.Mechanism);
            Send(Reply.AuthSucceeded);
            return;
        }
        else
        {
            reason = "invalid credentials";
        }
        var (failures, delay, newBans) = attempt.Failed();
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
