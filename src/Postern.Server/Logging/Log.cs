using Microsoft.Extensions.Logging;

namespace Postern.Server.Logging;

/// <summary>
/// The catalogue of events (STYLE principle 10): stable ids, one line each, key names as in SPEC §7.
/// Every event of a message carries queue_id; session events carry session (the connection id).
/// </summary>
public static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "listener={listener} role={role} endpoint={endpoint}", EventName = "listening")]
    public static partial void Listening(ILogger logger, string listener, string role, string endpoint);

    [LoggerMessage(2, LogLevel.Information, "listeners={listeners} data={data}", EventName = "started")]
    public static partial void Started(ILogger logger, int listeners, string data);

    [LoggerMessage(3, LogLevel.Information, "reason={reason}", EventName = "stopping")]
    public static partial void Stopping(ILogger logger, string reason);

    [LoggerMessage(4, LogLevel.Information, "sessions_left={sessions_left}", EventName = "stopped")]
    public static partial void Stopped(ILogger logger, int sessions_left);

    [LoggerMessage(10, LogLevel.Information, "session={session} listener={listener} ip={ip} port={port}", EventName = "connect")]
    public static partial void Connect(ILogger logger, string session, string listener, string ip, int port);

    [LoggerMessage(11, LogLevel.Warning, "session={session} listener={listener} ip={ip} code={code} reason={reason} detail={detail}", EventName = "connection_refused")]
    public static partial void ConnectionRefused(ILogger logger, string session, string listener, string ip, int code, string reason, string detail);

    [LoggerMessage(12, LogLevel.Information, "session={session} ip={ip} helo={helo} messages={messages} rcpts={rcpts} errors={errors} commands={commands} reason={reason}", EventName = "disconnect")]
    public static partial void Disconnect(ILogger logger, string session, string ip, string? helo, int messages, int rcpts, int errors, int commands, string reason);

    [LoggerMessage(13, LogLevel.Information, "session={session} ip={ip} tls_version={tls_version} cipher={cipher}", EventName = "tls")]
    public static partial void Tls(ILogger logger, string session, string ip, string tls_version, string cipher);

    [LoggerMessage(14, LogLevel.Warning, "session={session} ip={ip} reason={reason}", EventName = "tls_failed")]
    public static partial void TlsFailed(ILogger logger, string session, string ip, string reason);

    [LoggerMessage(15, LogLevel.Information, "session={session} ip={ip} user={user} mechanism={mechanism}", EventName = "auth_ok")]
    public static partial void AuthOk(ILogger logger, string session, string ip, string user, string mechanism);

    [LoggerMessage(16, LogLevel.Warning, "session={session} ip={ip} user={user} mechanism={mechanism} failures={failures} reason={reason}", EventName = "auth_failed")]
    public static partial void AuthFailed(ILogger logger, string session, string ip, string? user, string mechanism, int failures, string reason);

    [LoggerMessage(17, LogLevel.Warning, "key={key} ip={ip} failures={failures} level={level} until={until}", EventName = "ban")]
    public static partial void Ban(ILogger logger, string key, string ip, int failures, int level, DateTimeOffset until);

    [LoggerMessage(18, LogLevel.Information, "key={key} by={by}", EventName = "ban_released")]
    public static partial void BanReleased(ILogger logger, string key, string by);

    // Accounts (issue 12, helper peers): ids 280-289.
    /// <summary>DATA/logins.json could not be written; the owners' addresses stay known in memory and the next change writes again.</summary>
    [LoggerMessage(280, LogLevel.Warning, "file={file} reason={reason}", EventName = "known_addresses_write_failed")]
    public static partial void KnownAddressesWriteFailed(ILogger logger, string file, string reason);

    /// <summary>Any refusal; <paramref name="reason"/> is a word of <see cref="RefusalReason"/>, <paramref name="detail"/> the particulars.</summary>
    [LoggerMessage(20, LogLevel.Information, "session={session} queue_id={queue_id} ip={ip} command={command} code={code} enhanced={enhanced} reason={reason} detail={detail}", EventName = "rejected")]
    public static partial void Rejected(ILogger logger, string session, string? queue_id, string ip, string command, int code, string? enhanced, string reason, string detail);

    [LoggerMessage(21, LogLevel.Information, "queue_id={queue_id} session={session} ip={ip} from={from} rcpts={rcpts} size={size} user={user} protocol={protocol}", EventName = "accepted")]
    public static partial void Accepted(ILogger logger, string queue_id, string session, string ip, string from, int rcpts, long size, string? user, string protocol);

    [LoggerMessage(22, LogLevel.Information, "queue_id={queue_id} to=<{to}> orig_to=<{orig_to}> transport={transport} relay={relay} relay_ip={relay_ip} relay_port={relay_port} tls={tls} status={status} delay={delay} detail={detail}", EventName = "delivery")]
    public static partial void Delivery(ILogger logger, string queue_id, string to, string orig_to, string transport, string relay, string relay_ip, int relay_port, string tls, string status, double delay, string detail);

    [LoggerMessage(23, LogLevel.Information, "queue_id={queue_id} reason={reason}", EventName = "removed")]
    public static partial void Removed(ILogger logger, string queue_id, string reason);

    [LoggerMessage(28, LogLevel.Information, "queue_id={queue_id} dsn_id={dsn_id} to={to} failed={failed}", EventName = "bounce_queued")]
    public static partial void BounceQueued(ILogger logger, string queue_id, string dsn_id, string to, int failed);

    [LoggerMessage(24, LogLevel.Information, "queue_id={queue_id} rcpts={rcpts}", EventName = "queued_remote")]
    public static partial void QueuedRemote(ILogger logger, string queue_id, int rcpts);

    [LoggerMessage(25, LogLevel.Information, "messages={messages} corrupt={corrupt}", EventName = "queue_recovered")]
    public static partial void QueueRecovered(ILogger logger, int messages, int corrupt);

    [LoggerMessage(26, LogLevel.Error, "queue_id={queue_id} file={file} reason={reason}", EventName = "queue_corrupt")]
    public static partial void QueueCorrupt(ILogger logger, string queue_id, string file, string reason);

    // Queue (issue 12, helper queue): ids 260-279.
    [LoggerMessage(260, LogLevel.Error, "queue_id={queue_id} file={file} message={message} reason={reason}", EventName = "queue_state_corrupt")]
    public static partial void QueueStateCorrupt(ILogger logger, string queue_id, string file, string message, string reason);

    [LoggerMessage(27, LogLevel.Error, "queue_id={queue_id} session={session} reason={reason}", EventName = "commit_failed")]
    public static partial void CommitFailed(ILogger logger, string queue_id, string session, string reason);

    [LoggerMessage(50, LogLevel.Information, "queue_id={queue_id} action={action} result={result} detail={detail}", EventName = "queue_control")]
    public static partial void QueueControl(ILogger logger, string queue_id, string action, string result, string detail);

    [LoggerMessage(51, LogLevel.Error, "request={request} reason={reason}", EventName = "queue_control_failed")]
    public static partial void QueueControlFailed(ILogger logger, string request, string reason, Exception exception);

    [LoggerMessage(30, LogLevel.Information, "file={file} entries={entries}", EventName = "reloaded")]
    public static partial void Reloaded(ILogger logger, string file, int entries);

    [LoggerMessage(31, LogLevel.Error, "file={file} reason={reason}", EventName = "reload_failed")]
    public static partial void ReloadFailed(ILogger logger, string file, string reason);

    [LoggerMessage(41, LogLevel.Error, "queue_id={queue_id} reason={reason}", EventName = "delivery_error")]
    public static partial void DeliveryError(ILogger logger, string queue_id, string reason, Exception exception);

    [LoggerMessage(40, LogLevel.Error, "session={session} reason={reason}", EventName = "session_error")]
    public static partial void SessionError(ILogger logger, string session, string reason, Exception exception);

    [LoggerMessage(60, LogLevel.Information, "session={session} listener={listener} proxy={proxy} ip={ip} port={port} version={version} command={command}", EventName = "proxy")]
    public static partial void Proxy(ILogger logger, string session, string listener, string proxy, string ip, int port, int version, string command);

    [LoggerMessage(61, LogLevel.Warning, "session={session} listener={listener} ip={ip} reason={reason}", EventName = "proxy_refused")]
    public static partial void ProxyRefused(ILogger logger, string session, string listener, string ip, string reason);

    // TLS certificate life (Listening/CertificateReloader): ids 140-149.
    [LoggerMessage(140, LogLevel.Information, "file={file} subject={subject} not_after={not_after} fingerprint={fingerprint}", EventName = "tls_loaded")]
    public static partial void TlsLoaded(ILogger logger, string file, string subject, string not_after, string fingerprint);

    [LoggerMessage(141, LogLevel.Information, "file={file} subject={subject} not_after={not_after} fingerprint={fingerprint}", EventName = "tls_reloaded")]
    public static partial void TlsReloaded(ILogger logger, string file, string subject, string not_after, string fingerprint);

    [LoggerMessage(142, LogLevel.Error, "file={file} key_file={key_file} reason={reason}", EventName = "tls_reload_failed")]
    public static partial void TlsReloadFailed(ILogger logger, string file, string key_file, string reason);

    [LoggerMessage(143, LogLevel.Warning, "file={file} subject={subject} not_after={not_after} days_left={days_left} fingerprint={fingerprint}", EventName = "tls_certificate_expiring")]
    public static partial void TlsCertificateExpiring(ILogger logger, string file, string subject, string not_after, int days_left, string fingerprint);

    [LoggerMessage(144, LogLevel.Error, "file={file} subject={subject} not_after={not_after} days_left={days_left} fingerprint={fingerprint}", EventName = "tls_certificate_expired")]
    public static partial void TlsCertificateExpired(ILogger logger, string file, string subject, string not_after, int days_left, string fingerprint);

    // Refusal reasons and DNS failures: ids 150-159.
    [LoggerMessage(150, LogLevel.Information, "queue_id={queue_id} session={session} ip={ip} reason={reason} folder={folder} detail={detail}", EventName = "quarantined")]
    public static partial void Quarantined(ILogger logger, string queue_id, string session, string ip, string reason, string folder, string detail);

    [LoggerMessage(151, LogLevel.Warning, "server={server} query={query} type={type} reason={reason} suppressed={suppressed}", EventName = "dns_failed")]
    public static partial void DnsFailed(ILogger logger, string server, string query, string type, string reason, int suppressed);

    [LoggerMessage(90, LogLevel.Warning, "zone={zone} ip={ip} reason={reason} suppressed={suppressed}", EventName = "dnsbl_failed")]
    public static partial void DnsblFailed(ILogger logger, string zone, string ip, string reason, int suppressed);

    [LoggerMessage(91, LogLevel.Information, "session={session} ip={ip} score={score} threshold={threshold} reason={reason}", EventName = "dnsbl_passed")]
    public static partial void DnsblPassed(ILogger logger, string session, string ip, int score, int threshold, string reason);

    // Local submission (`postern sendmail`, Queue/Pickup): ids 160-169.
    [LoggerMessage(160, LogLevel.Information, "queue_id={queue_id} uid={uid} user={user} from=<{from}> rcpts={rcpts} size={size}", EventName = "pickup")]
    public static partial void Pickup(ILogger logger, string queue_id, uint uid, string user, string from, int rcpts, long size);

    [LoggerMessage(161, LogLevel.Warning, "queue_id={queue_id} file={file} uid={uid} user={user} from=<{from}> reason={reason}", EventName = "pickup_refused")]
    public static partial void PickupRefused(ILogger logger, string queue_id, string file, uint uid, string user, string from, string reason);

    [LoggerMessage(162, LogLevel.Error, "file={file} uid={uid} user={user} moved_to={moved_to} reason={reason}", EventName = "pickup_bad_file")]
    public static partial void PickupBadFile(ILogger logger, string file, string uid, string user, string moved_to, string reason);

    [LoggerMessage(163, LogLevel.Error, "file={file} reason={reason}", EventName = "pickup_failed")]
    public static partial void PickupFailed(ILogger logger, string file, string reason);

    // Configuration reload (PosternServer.Reload.cs, SIGHUP or `postern reload`): ids 170-179. The
    // event names are those of the file re-reads (30, 31) on purpose, so one grep finds every reload;
    // a configuration reload is told apart by its trigger= field.
#pragma warning disable SYSLIB1025 // the same event name as Reloaded and ReloadFailed, see above
    [LoggerMessage(170, LogLevel.Information, "trigger={trigger} file={file} changed={changed} restart_needed={restart_needed}", EventName = "reloaded")]
    public static partial void ConfigurationReloaded(ILogger logger, string trigger, string file, string changed, string restart_needed);

    [LoggerMessage(171, LogLevel.Error, "trigger={trigger} file={file} errors={errors} reason={reason}", EventName = "reload_failed")]
    public static partial void ConfigurationReloadFailed(ILogger logger, string trigger, string file, int errors, string reason);
#pragma warning restore SYSLIB1025

    [LoggerMessage(172, LogLevel.Warning, "key={key} running={running} configured={configured}", EventName = "restart_needed")]
    public static partial void RestartNeeded(ILogger logger, string key, string running, string configured);

    // Overload (Listening/ListenerSlots, issue 12): ids 240-259.
    [LoggerMessage(240, LogLevel.Warning, "session={session} listener={listener} ip={ip} idle_seconds={idle_seconds} open={open} cap={cap} reason={reason}", EventName = "connection_shed")]
    public static partial void ConnectionShed(ILogger logger, string session, string listener, string ip, long idle_seconds, int open, int cap, string reason);

    [LoggerMessage(241, LogLevel.Information, "soft={soft} hard={hard} before={before}", EventName = "open_files_limit")]
    public static partial void OpenFilesLimit(ILogger logger, long soft, long hard, long before);

    [LoggerMessage(242, LogLevel.Warning, "soft={soft} connections={connections} detail=\"the listeners' caps allow more connections than files may be open; raise LimitNOFILE (systemd) or ulimit -n\"", EventName = "open_files_too_few")]
    public static partial void OpenFilesTooFew(ILogger logger, long soft, long connections);

    // Ids 220-239: mail authentication and bounded work per message (issue 12).
    [LoggerMessage(220, LogLevel.Error, "queue_id={queue_id} session={session} ip={ip} reason={reason}", EventName = "mail_auth_error")]
    public static partial void MailAuthError(ILogger logger, string queue_id, string session, string ip, string reason, Exception exception);

    // Ids 300-339: content filters (Filters/, issue 13).
    [LoggerMessage(300, LogLevel.Warning, "milter={milter} address={address} default_action={default_action} reason={reason}", EventName = "milter_unavailable")]
    public static partial void MilterUnavailable(ILogger logger, string milter, string address, string default_action, string reason);

    [LoggerMessage(301, LogLevel.Debug, "milter={milter} reason={reason}", EventName = "milter_still_unavailable")]
    public static partial void MilterStillUnavailable(ILogger logger, string milter, string reason);

    [LoggerMessage(302, LogLevel.Information, "milter={milter} address={address} down_seconds={down_seconds}", EventName = "milter_available")]
    public static partial void MilterAvailable(ILogger logger, string milter, string address, long down_seconds);

    [LoggerMessage(303, LogLevel.Information, "session={session} milter={milter} stage={stage} verdict={verdict} reply={reply}", EventName = "milter_verdict")]
    public static partial void MilterVerdict(ILogger logger, string session, string milter, string stage, string verdict, string? reply);
}
