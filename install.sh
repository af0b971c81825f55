#!/bin/sh
# install.sh: build rosh-ssh and install it with the rosh shell function.
#
#   ./install.sh [--prefix DIR] [--uninstall]      (DIR defaults to ~/.local)
#
# Installs DIR/bin/rosh-ssh, DIR/share/rosh/rosh.sh, DIR/share/rosh/rosh.fish
# and DIR/lib/rosh/bin/ssh -> ../../../bin/rosh-ssh (a shim for callers that
# find ssh on PATH). Edits no rc file: prints the lines to add instead.
# Idempotent; needs no root. --uninstall removes exactly those files, and the
# directories under DIR that are left empty.
set -u

say() { printf 'install.sh: %s\n' "$*"; }
err() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || err "need '$1' (command not found)"
}

# Everything this script puts under the prefix. DIRS in creation order; the
# ones that did not exist yet are listed in MANIFEST, so --uninstall removes
# only directories this script made.
FILES='bin/rosh-ssh share/rosh/rosh.sh share/rosh/rosh.fish lib/rosh/bin/ssh'
DIRS='bin share share/rosh lib lib/rosh lib/rosh/bin'
MANIFEST=share/rosh/created-dirs

usage() {
  say 'usage: ./install.sh [--prefix DIR] [--uninstall]'
  exit 2
}

# put SOURCE FILE MODE: copy, then rename over FILE, so a running rosh-ssh
# keeps its old inode and a failed copy leaves the old file in place.
put() {
  cp "$1" "$prefix/$2.new" || err "cannot install $prefix/$2"
  chmod "$3" "$prefix/$2.new" || err "cannot chmod $prefix/$2"
  mv -f "$prefix/$2.new" "$prefix/$2" || err "cannot install $prefix/$2"
}

install_all() {
  need_cmd cargo
  created=
  [ -f "$prefix/$MANIFEST" ] && created=$(cat "$prefix/$MANIFEST")
  for d in $DIRS; do
    [ -d "$prefix/$d" ] && continue
    mkdir -p "$prefix/$d" || err "cannot create $prefix/$d"
    created="$created $d"
  done
  for d in bin share/rosh lib/rosh/bin; do
    [ -w "$prefix/$d" ] || err "$prefix/$d is not writable"
  done
  # Written before the build, so that --uninstall finds what a failed
  # install created.
  # shellcheck disable=SC2086 # one line of words
  echo $created >"$prefix/$MANIFEST" || err "cannot write $prefix/$MANIFEST"
  say 'building the release binary (cargo build --release)'
  (cd "$src" && command cargo build --release --locked --quiet) || err 'cargo build failed'
  case ${CARGO_TARGET_DIR-} in # cargo reads a relative one from $src
    '') target=$src/target ;;
    /*) target=$CARGO_TARGET_DIR ;;
    *) target=$src/$CARGO_TARGET_DIR ;;
  esac
  put "$target/release/rosh-ssh" bin/rosh-ssh 755
  put "$src/shell/rosh.sh" share/rosh/rosh.sh 644
  put "$src/shell/rosh.fish" share/rosh/rosh.fish 644
  ln -sfn ../../../bin/rosh-ssh "$prefix/lib/rosh/bin/ssh" || err 'cannot make the ssh shim'
  "$prefix/bin/rosh-ssh" --version >/dev/null 2>&1 || err "$prefix/bin/rosh-ssh does not run"

  say "installed into $prefix. Add what you want to your shell's rc file:"
  cat <<EOF

  # the rosh function (bash, zsh, ksh, sh: ~/.bashrc, ~/.zshrc, ~/.kshrc, \$ENV)
  . '$prefix/share/rosh/rosh.sh'
  # fish (~/.config/fish/config.fish)
  source '$prefix/share/rosh/rosh.fish'

  # optional: rosh-ssh on PATH, and every interactive ssh through it
  PATH='$prefix/bin':\$PATH          # fish: fish_add_path '$prefix/bin'
  alias ssh=rosh-ssh

  # optional: tools that find ssh on PATH (vagrant ssh, git, rsync) use rosh-ssh
  PATH='$prefix/lib/rosh/bin':\$PATH  # fish: fish_add_path '$prefix/lib/rosh/bin'

  # optional, in ~/.ssh/config, for hosts reached by ssh clients you cannot wrap
  Host myhost
    ProxyCommand '$prefix/bin/rosh-ssh' --proxy %h %p

EOF
}

uninstall_all() {
  created=
  [ -f "$prefix/$MANIFEST" ] && created=$(cat "$prefix/$MANIFEST")
  for f in $FILES $MANIFEST; do
    if [ -e "$prefix/$f" ] || [ -L "$prefix/$f" ]; then
      rm -f "$prefix/$f" || err "cannot remove $prefix/$f"
      say "removed $prefix/$f"
    fi
  done
  # Deepest first; rmdir only removes empty ones: what others put there stays.
  # shellcheck disable=SC2086 # the manifest is a list of words
  for d in $(printf '%s\n' $created | sort -r); do
    [ -d "$prefix/$d" ] && rmdir "$prefix/$d" 2>/dev/null && say "removed $prefix/$d/"
  done
  return 0
}

main() {
  prefix=${HOME-}/.local uninstall=
  while [ $# -gt 0 ]; do
    case $1 in
      --prefix)
        [ $# -ge 2 ] || usage
        prefix=$2
        shift
        ;;
      --prefix=*) prefix=${1#--prefix=} ;;
      --uninstall) uninstall=1 ;;
      -h | --help) usage ;;
      *) usage ;;
    esac
    shift
  done
  [ -n "$prefix" ] || err 'empty --prefix'
  # The lines printed for rc files quote the prefix in single quotes.
  case $prefix in *\'*) err "--prefix must not contain a single quote: $prefix" ;; esac
  case $prefix in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
  src=$(cd "$(dirname "$0")" && pwd) || err 'cannot find the source directory'
  if [ -n "$uninstall" ]; then uninstall_all; else install_all; fi
}

main "$@" || exit 1
