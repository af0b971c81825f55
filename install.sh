#!/bin/sh
# install.sh: build rosh-ssh and install it with the rosh shell function.
#
#   ./install.sh [--prefix DIR] [--uninstall]      (DIR defaults to ~/.local)
#
# Installs DIR/bin/rosh-ssh, DIR/share/rosh/rosh.sh, DIR/share/rosh/rosh.fish,
# DIR/lib/rosh/bin/ssh -> ../../../bin/rosh-ssh (a shim for callers that
# find ssh on PATH), the man pages rosh-ssh(1) and rosh(1) in
# DIR/share/man/man1, completions for bash, zsh and fish where each shell
# looks under DIR/share, and the licence texts in DIR/share/doc/rosh-ssh.
# Edits no rc file: prints the lines to add instead.
# Idempotent; needs no root. --uninstall removes exactly those files, and the
# directories it created (DIR itself too) that are left empty.
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
BASHCOMP=share/bash-completion/completions
ZSHCOMP=share/zsh/site-functions
FISHCOMP=share/fish/vendor_completions.d
MAN1=share/man/man1
DOC=share/doc/rosh-ssh
FILES="bin/rosh-ssh share/rosh/rosh.sh share/rosh/rosh.fish lib/rosh/bin/ssh
$MAN1/rosh-ssh.1 $MAN1/rosh.1 $BASHCOMP/rosh-ssh $BASHCOMP/rosh
$ZSHCOMP/_rosh-ssh $ZSHCOMP/_rosh $FISHCOMP/rosh-ssh.fish $FISHCOMP/rosh.fish
$DOC/LICENSE-MIT $DOC/LICENSE-APACHE"
DIRS="bin share share/rosh lib lib/rosh lib/rosh/bin share/man $MAN1
share/bash-completion $BASHCOMP share/zsh $ZSHCOMP share/fish $FISHCOMP
share/doc $DOC"
MANIFEST=share/rosh/created-dirs

USAGE='usage: ./install.sh [--prefix DIR] [--uninstall]

Builds rosh-ssh (cargo build --release) and installs into DIR (default
~/.local): bin/rosh-ssh, share/rosh/rosh.{sh,fish} (the rosh function),
lib/rosh/bin/ssh (a PATH shim), share/man/man1/rosh-ssh.1 and rosh.1,
completions for bash, zsh and fish, and the licence texts in
share/doc/rosh-ssh. Edits no rc file: prints the lines to add.

  --prefix DIR  install under DIR instead of ~/.local
  --uninstall   remove what was installed, and the directories install.sh
                created that are left empty
  --help        print this and exit'

usage() {
  printf 'install.sh: %s (see --help)\n' "$1" >&2
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
  # "." is the prefix itself, when this script makes it.
  if [ ! -d "$prefix" ]; then
    mkdir -p "$prefix" || err "cannot create $prefix"
    created="$created ."
  fi
  for d in $DIRS; do
    [ -d "$prefix/$d" ] && continue
    mkdir -p "$prefix/$d" || err "cannot create $prefix/$d"
    created="$created $d"
  done
  for d in bin share/rosh lib/rosh/bin $MAN1 $BASHCOMP $ZSHCOMP $FISHCOMP $DOC; do
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
  put "$src/man/rosh-ssh.1" "$MAN1/rosh-ssh.1" 644
  put "$src/man/rosh.1" "$MAN1/rosh.1" 644
  # bash-completion loads a file named after the command: one file, two names.
  put "$src/completions/rosh.bash" "$BASHCOMP/rosh-ssh" 644
  put "$src/completions/rosh.bash" "$BASHCOMP/rosh" 644
  put "$src/completions/_rosh-ssh" "$ZSHCOMP/_rosh-ssh" 644
  put "$src/completions/_rosh" "$ZSHCOMP/_rosh" 644
  put "$src/completions/rosh-ssh.fish" "$FISHCOMP/rosh-ssh.fish" 644
  put "$src/completions/rosh.fish" "$FISHCOMP/rosh.fish" 644
  put "$src/LICENSE-MIT" "$DOC/LICENSE-MIT" 644
  put "$src/LICENSE-APACHE" "$DOC/LICENSE-APACHE" 644
  # rm, then ln -s: POSIX ln has no -n (a shim left as a symlink to a
  # directory would otherwise get the new link inside it).
  rm -f "$prefix/lib/rosh/bin/ssh" || err 'cannot replace the ssh shim'
  ln -s ../../../bin/rosh-ssh "$prefix/lib/rosh/bin/ssh" || err 'cannot make the ssh shim'
  "$prefix/bin/rosh-ssh" --version >/dev/null 2>&1 || err "$prefix/bin/rosh-ssh does not run"

  say "installed into $prefix:"
  for f in $FILES; do printf '  %s\n' "$prefix/$f"; done
  where_shells_look
  say "add what you want to your shell's rc file:"
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

# on_list DIR LIST: whether DIR is one of LIST's colon-separated entries.
on_list() {
  case ":$2:" in *":$1:"* | *":$1/:"*) return 0 ;; esac
  return 1
}

# Says, for each shell, whether it finds the completions by itself, and the
# one line to add when it does not.
where_shells_look() {
  data=${XDG_DATA_HOME:-${HOME-}/.local/share}
  say 'completions and man pages:'
  # bash-completion: its user dir, then XDG_DATA_DIRS.
  if [ "$prefix/share" = "$data" ] ||
    on_list "$prefix/share" "${XDG_DATA_DIRS:-/usr/local/share:/usr/share}"; then
    echo "  bash: $prefix/$BASHCOMP (bash-completion loads it by itself)"
  else
    echo "  bash: $prefix/$BASHCOMP is not where bash-completion looks; in ~/.bashrc:"
    echo "    . '$prefix/$BASHCOMP/rosh-ssh'"
  fi
  # zsh: compinit reads fpath; a prefix's site-functions is on it only for
  # the prefix zsh was built with.
  zfpath=
  command -v zsh >/dev/null 2>&1 && zfpath=$(command zsh -fc 'print -rn -- ${(j.:.)fpath}' 2>/dev/null)
  if on_list "$prefix/$ZSHCOMP" "$zfpath"; then
    echo "  zsh:  $prefix/$ZSHCOMP (on zsh's fpath)"
  else
    echo "  zsh:  $prefix/$ZSHCOMP is not on zsh's fpath; in ~/.zshrc, before compinit:"
    echo "    fpath=('$prefix/$ZSHCOMP' \$fpath)"
  fi
  # fish: XDG_DATA_HOME and XDG_DATA_DIRS, each + fish/vendor_completions.d.
  if [ "$prefix/share" = "$data" ] ||
    on_list "$prefix/share" "${XDG_DATA_DIRS:-/usr/local/share:/usr/share}"; then
    echo "  fish: $prefix/$FISHCOMP (fish loads it by itself)"
  else
    echo "  fish: $prefix/$FISHCOMP is not where fish looks; in config.fish:"
    echo "    set -p fish_complete_path '$prefix/$FISHCOMP'"
  fi
  echo "  man:  $prefix/$MAN1 (man rosh-ssh, man rosh: found when $prefix/bin is on PATH)"
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
    [ "$d" = . ] && d=
    [ -d "$prefix/$d" ] && rmdir "$prefix/$d" 2>/dev/null && say "removed $prefix/$d"
  done
  return 0
}

main() {
  prefix=${HOME-}/.local uninstall=
  while [ $# -gt 0 ]; do
    case $1 in
      --prefix)
        [ $# -ge 2 ] || usage '--prefix needs a directory'
        prefix=$2
        shift
        ;;
      --prefix=*) prefix=${1#--prefix=} ;;
      --uninstall) uninstall=1 ;;
      -h | --help)
        printf '%s\n' "$USAGE"
        exit 0
        ;;
      *) usage "unknown option: $1" ;;
    esac
    shift
  done
  [ -n "$prefix" ] || err 'empty --prefix'
  # The lines printed for rc files quote the prefix in single quotes.
  case $prefix in *\'*) err "--prefix must not contain a single quote: $prefix" ;; esac
  case $prefix in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
  # With CDPATH set, cd would print the directory it chose.
  src=$(CDPATH='' cd "$(dirname "$0")" && pwd) || err 'cannot find the source directory'
  if [ -n "$uninstall" ]; then uninstall_all; else install_all; fi
}

main "$@" || exit 1
