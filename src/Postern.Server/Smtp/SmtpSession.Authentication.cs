using Postern.Protocol.Replies;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// DKIM, DMARC and ARC at the end of the data, read back from the spool file before the commit: the
    /// results go into the envelope's Authentication-Results field (with SPF's from MAIL), a DMARC
    /// reject refuses the message (550 5.7.1) and a quarantine sends it to the Junk folder, unless
    /// MailAuth.EnforceDmarc is off. False when the message was refused.
    /// </summary>
    /// <remarks>
    /// An unexpected failure of the checks (an exception, not a DNS answer: those are temperror
    /// results) refuses this message only, with 451 4.7.0 (RFC 7489 §6.6.2 lets a receiver defer what
    /// it could not evaluate); the session goes on, and the next message is checked afresh.
    /// </remarks>
    private async Task<bool> AuthenticateAsync(Transaction t, SpoolWriter writer)
    {
        try
        {
            return await CheckAuthenticationAsync(t, writer);
        }
        catch (Exception e) when (e is not IOException && (e is not OperationCanceledException || !_ctx.ShuttingDown.IsCancellationRequested))
        {
            Log.MailAuthError(_ctx.Logger, t.Id.Value, _id, Ip, e.Message, e);
            Refuse(t.Bdat is null ? "DATA" : "BDAT", Reply.MailAuthUnavailable, RefusalReason.MailAuthError, e.GetType().Name);
            ResetTransaction();
            return false;
        }
    }

    private async Task<bool> CheckAuthenticationAsync(Transaction t, SpoolWriter writer)
    {
        IReadOnlyList<Postern.MailAuth.Dkim.DkimSignatureResult> dkim;
        MimeKit.HeaderList headers;
        var arc = Postern.MailAuth.Arc.ArcChainResult.None;
        await using (var file = new BufferedStream(writer.ReadMessage(), 64 * 1024))
        {
            dkim = await _ctx.Dkim.VerifyAsync(file, _ctx.ShuttingDown);
            file.Position = 0;
            headers = await MimeKit.HeaderList.LoadAsync(MimeKit.ParserOptions.Default, file, _ctx.ShuttingDown);
            if (Postern.MailAuth.Arc.ArcChainVerifier.HasChain(headers))
            {
                // Only a message with an ARC-Seal is read a second time (header section, streamed body).
                file.Position = 0;
                arc = await _ctx.Arc.VerifyAsync(file, _ctx.ShuttingDown);
            }
        }
        var spf = t.Spf!;
        var author = Postern.MailAuth.Dmarc.AuthorDomain.FromHeaders(headers);
        var spfDomain = spf.Sender[(spf.Sender.LastIndexOf('@') + 1)..];
        var dmarc = await _ctx.Dmarc.EvaluateAsync(author, new Postern.MailAuth.Dmarc.MechanismResult(spf.Result, spfDomain),
            dkim.Select(d => new Postern.MailAuth.Dmarc.MechanismResult(d.Result, d.Domain)).ToList(), _ctx.ShuttingDown);
        var resinfos = t.AuthResults.Select(Postern.MailAuth.AuthenticationResults.AuthenticationResultsHeader.ToResInfo).ToList();
        resinfos.AddRange(dkim.Count == 0 ? ["dkim=none"] : dkim.Select(d => d.ToResInfo()));
        resinfos.Add(dmarc.ToAuthenticationResults());
        resinfos.Add(arc.ToResInfo(Ip.ToString()));
        var enforce = MailAuthPolicy.EnforceDmarc;
        if (enforce && dmarc.Disposition == Postern.MailAuth.Dmarc.DmarcPolicy.Reject)
        {
            Refuse(t.Bdat is null ? "DATA" : "BDAT", Reply.DmarcReject.WithText($"Message rejected: it fails the DMARC policy of {dmarc.AuthorDomain} (p=reject)"), RefusalReason.Dmarc, dmarc.ToAuthenticationResults());
            ResetTransaction();
            return false;
        }
        var envelope = t.Envelope!;
        envelope.AuthenticationResults = Postern.MailAuth.AuthenticationResults.AuthenticationResultsHeader.Format(Options.Hostname, resinfos);
        if (enforce && dmarc.Disposition == Postern.MailAuth.Dmarc.DmarcPolicy.Quarantine)
        {
            envelope.Folder = "Junk";
            t.Quarantine = dmarc.ToAuthenticationResults();
        }
        writer.RewriteEnvelope(envelope);
        return true;
    }
}
