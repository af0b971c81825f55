#!/bin/sh
# pkg/build-deb.sh [OUTDIR]: build the Debian package rosh-ssh with dpkg-deb.
#
# Builds the release binary (cargo build --release) and writes
# OUTDIR/rosh-ssh_VERSION_ARCH.deb (OUTDIR defaults to the cargo target
# dir's debian/). Needs cargo and dpkg-deb; no root, no debhelper.
#
# Contents: /usr/bin/rosh-ssh; /usr/share/rosh/rosh.{sh,fish} (the rosh
# function); /usr/lib/rosh/bin/ssh -> ../../../bin/rosh-ssh (the PATH shim);
# man pages rosh-ssh(1) and rosh(1); completions for bash
# (/usr/share/bash-completion/completions), zsh
# (/usr/share/zsh/vendor-completions) and fish
# (/usr/share/fish/vendor_completions.d); in /usr/share/doc/rosh-ssh the
# README, copyright (pkg/copyright, Debian's machine-readable format) and
# changelog.gz (CHANGELOG.md's releases as a Debian changelog: the package
# is native, its version is Cargo.toml's).
#
# Maintainer: $DEBFULLNAME <$DEBEMAIL> when set; else the project's name at
# localhost, which lintian reports as bogus-mail-host: the project has no
# mail address (README, "Debian package").
set -u

say() { printf 'build-deb.sh: %s\n' "$*"; }
err() {
  printf 'build-deb.sh: error: %s\n' "$*" >&2
  exit 1
}
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || err "need '$1' (command not found)"
}

# debian_changelog CHANGELOG.md NAME EMAIL: its releases (each "## [X] -
# YYYY-MM-DD" heading; not [Unreleased]) as a Debian changelog, newest
# first: "### Added" becomes "  Added:", a "- " item "  * ", its
# continuation lines and the paragraphs keep their words, indented; HTML
# comments are left out. deb-changelog(5) wants the date as date -R gives it.
debian_changelog() {
  awk -v name="$2" -v mail="$3" '
    function trailer() {
      if (version == "") return
      cmd = "LC_ALL=C TZ=UTC date -R -d " day
      stamp = ""
      cmd | getline stamp
      close(cmd)
      if (stamp == "") { print "no date for " day > "/dev/stderr"; exit 1 }
      printf "\n -- %s <%s>  %s\n", name, mail, stamp
    }
    /^<!--/ { comment = 1 }
    comment { if ($0 ~ /-->/) comment = 0; next }
    /^## \[/ {
      trailer()
      version = ""
      if ($0 !~ /^## \[[0-9][^]]*\] - [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$/) next
      v = $0; sub(/^## \[/, "", v); sub(/\].*/, "", v)
      day = $0; sub(/.* - /, "", day)
      if (n++) print ""
      printf "rosh-ssh (%s) unstable; urgency=medium\n", v
      version = v; gap = 1
      next
    }
    /^## / { trailer(); version = ""; next }
    version == "" { next }
    /^[[:space:]]*$/ { gap = 1; next }
    {
      if (gap) print ""
      gap = 0
      if (/^### /) { sub(/^### /, ""); print "  " $0 ":" }
      else if (/^- /) { sub(/^- /, ""); print "  * " $0 }
      else print "  " $0
    }
    END { trailer() }
  ' "$1"
}

# put SOURCE DEST MODE: DEST under the staging root, directories made.
put() {
  mkdir -p "$stage/$(dirname "$2")" || err "cannot create $stage/$(dirname "$2")"
  cp "$1" "$stage/$2" || err "cannot stage $2"
  chmod "$3" "$stage/$2" || err "cannot chmod $2"
}

main() {
  [ $# -le 1 ] || err 'usage: pkg/build-deb.sh [OUTDIR]'
  case ${1-} in -h | --help)
    say 'usage: pkg/build-deb.sh [OUTDIR]'
    exit 0
    ;;
  esac
  need_cmd cargo
  need_cmd dpkg-deb
  need_cmd dpkg
  need_cmd gzip
  need_cmd strip
  need_cmd md5sum
  src=$(cd "$(dirname "$0")/.." && pwd) || err 'cannot find the source directory'
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$src/Cargo.toml" | head -n 1)
  [ -n "$version" ] || err 'no version in Cargo.toml'
  arch=$(dpkg --print-architecture) || err 'dpkg --print-architecture failed'

  say 'building the release binary (cargo build --release)'
  (cd "$src" && command cargo build --release --locked --quiet) || err 'cargo build failed'
  case ${CARGO_TARGET_DIR-} in # cargo reads a relative one from $src
    '') target=$src/target ;;
    /*) target=$CARGO_TARGET_DIR ;;
    *) target=$src/$CARGO_TARGET_DIR ;;
  esac
  out=${1:-$target/debian}
  mkdir -p "$out" || err "cannot create $out"
  out=$(cd "$out" && pwd)

  stage=$(mktemp -d "${TMPDIR:-/tmp}/rosh-deb.XXXXXX") || err 'mktemp failed'
  trap 'rm -rf "$stage"' EXIT
  # The package's modes, whatever the caller's umask; the root is /.
  umask 022
  chmod 755 "$stage" || err "cannot chmod $stage"
  trap 'exit 130' INT HUP TERM

  put "$target/release/rosh-ssh" usr/bin/rosh-ssh 755
  # What dh_strip does beyond cargo's strip: the .comment section holds only
  # compiler version strings (lintian: binary-has-unneeded-section).
  strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/rosh-ssh" ||
    err 'cannot strip usr/bin/rosh-ssh'
  put "$src/shell/rosh.sh" usr/share/rosh/rosh.sh 644
  put "$src/shell/rosh.fish" usr/share/rosh/rosh.fish 644
  mkdir -p "$stage/usr/lib/rosh/bin" || err 'cannot stage the shim'
  ln -s ../../../bin/rosh-ssh "$stage/usr/lib/rosh/bin/ssh" || err 'cannot stage the shim'
  for page in rosh-ssh rosh; do
    put "$src/man/$page.1" "usr/share/man/man1/$page.1" 644
    gzip -9n "$stage/usr/share/man/man1/$page.1" || err "cannot compress $page.1"
  done
  put "$src/completions/rosh.bash" usr/share/bash-completion/completions/rosh-ssh 644
  put "$src/completions/rosh.bash" usr/share/bash-completion/completions/rosh 644
  put "$src/completions/_rosh-ssh" usr/share/zsh/vendor-completions/_rosh-ssh 644
  put "$src/completions/_rosh" usr/share/zsh/vendor-completions/_rosh 644
  put "$src/completions/rosh-ssh.fish" usr/share/fish/vendor_completions.d/rosh-ssh.fish 644
  put "$src/completions/rosh.fish" usr/share/fish/vendor_completions.d/rosh.fish 644
  put "$src/README.md" usr/share/doc/rosh-ssh/README.md 644
  put "$src/pkg/copyright" usr/share/doc/rosh-ssh/copyright 644
  name=${DEBFULLNAME:-rosh-ssh developers}
  mail=${DEBEMAIL:-rosh-ssh@localhost}
  debian_changelog "$src/CHANGELOG.md" "$name" "$mail" >"$stage/changelog" ||
    err 'cannot turn CHANGELOG.md into a Debian changelog'
  grep -q "^rosh-ssh ($version) " "$stage/changelog" ||
    err "CHANGELOG.md has no release $version (Cargo.toml's version)"
  head -n 1 "$stage/changelog" | grep -q "^rosh-ssh ($version) " ||
    err "CHANGELOG.md's top release is not $version (Cargo.toml's version)"
  gzip -9n <"$stage/changelog" >"$stage/usr/share/doc/rosh-ssh/changelog.gz" ||
    err 'cannot compress the changelog'
  rm -f "$stage/changelog"
  chmod 644 "$stage/usr/share/doc/rosh-ssh/changelog.gz" || err 'cannot chmod changelog.gz'

  size=$(du -sk "$stage/usr" | cut -f1)
  mkdir -p "$stage/DEBIAN" || err 'cannot create DEBIAN/'
  cat >"$stage/DEBIAN/control" <<EOC || err 'cannot write DEBIAN/control'
Package: rosh-ssh
Version: $version
Architecture: $arch
Maintainer: $name <$mail>
Installed-Size: $size
Depends: libc6, openssh-client
Recommends: tmux
Suggests: bash-completion, screen
Section: net
Priority: optional
Description: ssh that drops a taken port forward instead of the connection
 rosh-ssh is a drop-in ssh: same arguments, bytes, prompts and exit status,
 except that a port forward whose port is already taken costs one forward
 and one warning line instead of the whole connection.
 .
 The rosh shell function (sh, bash, zsh, ksh, dash, fish) keeps a remote
 tmux or screen session attached across dropped links.
EOC
  # dpkg -V checks the installed files against these sums.
  (cd "$stage" && find usr -type f | LC_ALL=C sort | xargs md5sum) >"$stage/DEBIAN/md5sums" ||
    err 'cannot write DEBIAN/md5sums'
  chmod 644 "$stage/DEBIAN/md5sums" || err 'cannot chmod DEBIAN/md5sums'
  deb=$out/rosh-ssh_${version}_$arch.deb
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null || err 'dpkg-deb failed'
  say "built $deb"
  say "install: sudo apt-get install '$deb'   (or: sudo dpkg -i '$deb')"
}

main "$@" || exit 1
