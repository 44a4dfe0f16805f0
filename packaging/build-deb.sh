#!/usr/bin/env bash
# Builds the Debian package postern_VERSION_amd64.deb from this repository and prints its path.
#
#   packaging/build-deb.sh [VERSION]
#
# VERSION defaults to 0.1.0+gitDATE.COMMIT-1 (the last commit's date and hash), so that each
# build of a later commit upgrades the one before. The package goes into $POSTERN_DEB_DIR, or dist/
# at the top of the repository. Needs the .NET 10 SDK and dpkg-deb; not root (--root-owner-group).
# How the package is laid out and why: packaging/README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${POSTERN_DEB_DIR:-$repo/dist}

# Reproducible: every timestamp (the changelog's, the files' in the archive) is the last commit's.
if SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null) && [ -n "$SOURCE_DATE_EPOCH" ]; then
  commit=$(git -C "$repo" rev-parse --short=10 HEAD)
else
  SOURCE_DATE_EPOCH=$(date +%s)
  commit=unknown
fi
export SOURCE_DATE_EPOCH

version=${1:-0.1.0+git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M).$commit-1}
# Debian policy §5.6.12: upstream[-revision], upstream starting with a digit (no epoch: it would be in the file name).
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$ ]]; then
  echo "build-deb.sh: '$version' is not a Debian version (e.g. 1.2.0-1)" >&2
  exit 2
fi
# Policy §12.7: changelog.Debian.gz, or changelog.gz for a version without a Debian revision (native).
changelog=changelog.Debian.gz
[[ $version == *-* ]] || changelog=changelog.gz
for tool in dotnet dpkg-deb gzip strip md5sum; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool is missing" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/postern-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

# Debian 12 has no .NET runtime package: the program carries its own runtime (self-contained), as
# one file. libsodium (argon2id password hashes, through Geralt) stays a file beside it: a native
# library bundled inside would be extracted at every start into the caller's $HOME/.net, which a
# cron job's user may not have. Its own artifacts folder keeps this restore (for linux-x64) away
# from the obj/ folders of the tree's normal build.
echo "build-deb.sh: dotnet publish (self-contained, linux-x64)..." >&2
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet publish "$repo/src/Postern/Postern.csproj" -c Release -r linux-x64 --self-contained true \
  -p:PublishSingleFile=true -p:DebugType=none -p:DebugSymbols=false -p:GenerateDocumentationFile=false \
  --artifacts-path "$work/artifacts" -o "$work/publish" -nologo -v quiet >&2
[ -x "$work/publish/postern" ] || { echo "build-deb.sh: dotnet publish made no postern" >&2; exit 1; }

# The files, with the modes Debian policy asks for (§10.9): 0755 programs, 0644 the rest.
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/postern" "$root/lib/systemd/system" \
  "$root/etc/postern" "$root/usr/share/doc/postern/docs" "$root/usr/share/man/man8" "$root/usr/share/lintian/overrides"
install -m 0755 "$work/publish/postern" "$root/usr/lib/postern/postern"
for lib in "$work/publish"/*.so; do
  install -m 0644 "$lib" "$root/usr/lib/postern/"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/lib/postern/$(basename "$lib")"
done
extra=$(find "$work/publish" -maxdepth 1 -type f ! -name postern ! -name '*.so' -printf '%f ')
[ -z "$extra" ] || { echo "build-deb.sh: dotnet publish made files this script does not place: $extra" >&2; exit 1; }
# The .NET host finds the runtime and libsodium beside the real path of the program, so the
# command in the PATH is a link to it.
ln -s ../lib/postern/postern "$root/usr/bin/postern"
install -m 0755 "$here/sendmail" "$root/usr/lib/postern/sendmail"
# Debian 12 keeps units in /lib/systemd/system (the /usr-merge moratorium; lintian says so).
install -m 0644 "$here/postern.service" "$root/lib/systemd/system/postern.service"
install -m 0644 "$here/postern.json" "$root/etc/postern/postern.json"
install -m 0644 "$here/debian/copyright" "$root/usr/share/doc/postern/copyright"
install -m 0644 "$repo/README.md" "$root/usr/share/doc/postern/README.md"
install -m 0644 "$repo"/docs/*.md "$root/usr/share/doc/postern/docs/"
sed "s|@CHANGELOG@|$changelog|" "$here/debian/lintian-overrides" >"$root/usr/share/lintian/overrides/postern"
chmod 0644 "$root/usr/share/lintian/overrides/postern"
gzip -9n <"$here/postern.8" >"$root/usr/share/man/man8/postern.8.gz"
chmod 0644 "$root/usr/share/man/man8/postern.8.gz"

# The changelog, one entry for this build (policy §12.7, gzip -9n).
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
maintainer=$(sed -n 's/^Maintainer: //p' "$here/debian/control.in")
printf 'postern (%s) unstable; urgency=medium\n\n  * Built from the Postern repository at commit %s.\n\n -- %s  %s\n' \
  "$version" "$commit" "$maintainer" "$date" | gzip -9n >"$root/usr/share/doc/postern/$changelog"
chmod 0644 "$root/usr/share/doc/postern/$changelog"

for script in postinst prerm postrm; do
  install -m 0755 "$here/debian/$script" "$root/DEBIAN/$script"
done
install -m 0644 "$here/debian/conffiles" "$root/DEBIAN/conffiles"
# md5sums of everything but the conffiles (dpkg keeps theirs itself).
(cd "$root" && find usr lib -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" "$here/debian/control.in" >"$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control"

# Files whose mtime is later than the commit get the commit's (dpkg-deb clamps to SOURCE_DATE_EPOCH).
mkdir -p "$out"
deb=$out/postern_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
