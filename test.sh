#!/usr/bin/env bash
# Installs what the tests need (when missing) and runs every test. `.ci/run` calls this too.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v bsd-mailx >/dev/null 2>&1 || need+=(bsd-mailx)   # `mail -s` through `postern sendmail` (Sendmail/)
[ -x /usr/sbin/nsd ] || need+=(nsd)   # the real DNS server the delivery tests query on loopback
[ -x /usr/sbin/postfix ] || need+=(postfix)   # private instances on loopback receive what Postern delivers
[ -x /usr/sbin/haproxy ] || need+=(haproxy)   # private instances on loopback send Postern the PROXY protocol
[ -x /usr/sbin/postsrsd ] || need+=(postsrsd)   # SRS peer: reverses what Postern rewrites and the other way round
[ -x /usr/sbin/spamd ] || need+=(spamd spamassassin)   # milter peers (Filters/): SpamAssassin's daemon, a private instance on loopback
[ -x /usr/sbin/spamass-milter ] || need+=(spamass-milter)   # and the milter in front of it, on a unix socket
[ -x /usr/sbin/opendkim ] || need+=(opendkim)   # OpenDKIM as a signing milter
[ -x /usr/sbin/opendkim-genkey ] || need+=(opendkim-tools)   # opendkim-genkey makes its test key
[ -x /usr/bin/rspamd ] || need+=(rspamd)   # rspamd: its proxy worker speaks the milter protocol, its normal worker HTTP (Filters/Rspamd)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)   # checks contrib/postern.service
command -v lintian >/dev/null 2>&1 || need+=(lintian)   # checks the Debian package packaging/build-deb.sh builds
command -v strip >/dev/null 2>&1 || need+=(binutils)   # build-deb.sh strips libsodium.so
command -v adduser >/dev/null 2>&1 || need+=(adduser)   # the package's postinst creates the user postern
[ -x /bin/kill ] || need+=(procps)   # kill -HUP: the reload tests signal a real `postern serve`
# A private Dovecot serves what Postern delivers (IMAP), and takes it by LMTP with Sieve and quotas.
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
[ -f /usr/lib/dovecot/modules/lib90_sieve_plugin.so ] || need+=(dovecot-sieve)
# Debian's dkimpy (and dnspython) verify what Postern signs and seals, and sign and seal what Postern verifies.
/usr/bin/python3 -c 'import dkim' >/dev/null 2>&1 || need+=(python3-dkim)
/usr/bin/python3 -c 'import dns.resolver' >/dev/null 2>&1 || need+=(python3-dnspython)
/usr/bin/python3 -c 'import authres' >/dev/null 2>&1 || need+=(python3-authres)   # dkimpy's ARC sealing needs it
command -v afl-fuzz >/dev/null 2>&1 || need+=(afl++)   # the short fuzz run after the tests (fuzz/README.md)
# swaks needs these Perl modules for STARTTLS, implicit TLS and AUTH.
perl -MIO::Socket::SSL -e1 >/dev/null 2>&1 || need+=(libio-socket-ssl-perl)
perl -MNet::SSLeay -e1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl)
perl -MAuthen::SASL -e1 >/dev/null 2>&1 || need+=(libauthen-sasl-perl)
if ((${#need[@]})); then
  echo "installing test peers: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${need[*]} " == *" postfix "* ]]; then
    # Only Postfix's programs are wanted: "No configuration" writes no main.cf, so the system-wide
    # instance is not set up and does not start (the tests run private ones, never on port 25).
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [[ " ${need[*]} " == *" postfix "* ]]; then
    # Should a package script have started the system-wide instance anyway, stop it and keep it off.
    $SUDO /usr/sbin/postfix stop >/dev/null 2>&1 || true
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now postfix >/dev/null 2>&1 || true; fi
  fi
  if [[ " ${need[*]} " == *" haproxy "* ]]; then
    # Likewise the system-wide HAProxy: the tests run their own, each with a generated configuration.
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true; fi
    $SUDO service haproxy stop >/dev/null 2>&1 || true
  fi
  if [[ " ${need[*]} " == *" dovecot-"* ]]; then
    # And the system-wide Dovecot (ports 143 and 993): the tests run their own, each with its own base_dir.
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true; fi
    $SUDO service dovecot stop >/dev/null 2>&1 || true
  fi
  if [[ " ${need[*]} " == *" postsrsd "* ]]; then
    # And the system-wide PostSRSd (127.0.0.1, ports 10001 and 10002): the tests run their own.
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now postsrsd >/dev/null 2>&1 || true; fi
    $SUDO service postsrsd stop >/dev/null 2>&1 || true
  fi
  for milter in spamd spamass-milter opendkim rspamd; do
    # And the system-wide milters and rspamd: the tests run private ones, each in a temporary folder.
    if [[ " ${need[*]} " == *" $milter "* ]]; then
      if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$milter" >/dev/null 2>&1 || true; fi
      $SUDO service "$milter" stop >/dev/null 2>&1 || true
    fi
  done
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build Postern.slnx -c Release -warnaserror -v quiet -nologo
# The house style: `dotnet format` must have nothing to change.
dotnet format Postern.slnx --verify-no-changes -v quiet || { echo "dotnet format found changes: run 'dotnet format Postern.slnx'"; exit 1; }
log=$(mktemp)
set +e
dotnet test Postern.slnx -c Release --no-build --nologo -v quiet --logger "console;verbosity=minimal" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
if [ "$failed" != 0 ]; then
  echo "failed tests:"
  grep -E '^\s+Failed [A-Za-z]' "$log" || true
fi
rm -f "$log"
# A short fuzz run: each target of fuzz/ for 8 s under afl-fuzz; a crash fails the build.
fuzz/run.sh 8 || { echo "the fuzz run found a crash (fuzz/README.md says what to do)"; status=1; }
echo "tests: $passed passed, $failed failed"
exit "$status"
