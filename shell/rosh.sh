# rosh: a tmux (or screen) session on HOST that outlives dropped connections.
#
#   rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [-F FILE] [-o OPTION]... HOST [SESSION]
#
# Source this file from ~/.bashrc, ~/.zshrc, ~/.kshrc or $ENV (sh, dash):
#   . ~/.local/share/rosh/rosh.sh
# It defines one function, rosh, which runs rosh-ssh (found on PATH) in a loop.
# POSIX sh: check with `dash -n` and `shellcheck -s sh`.

# The body is a subshell: its variables, helpers, traps and `set -u` never
# reach the calling shell.
rosh() (
  set -u

  say() { printf 'rosh: %s\n' "$*" >&2; }
  err() { say "$*"; exit 1; }
  usage() {
    say 'usage: rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [-F FILE] [-o OPTION]... HOST [SESSION]'
    exit 2
  }
  need_cmd() {
    command -v "$1" >/dev/null 2>&1 || err "need '$1' (command not found)"
  }

  # One word quoted for a POSIX shell: it's -> 'it'\''s'. Plain words stay bare.
  q() {
    # A leading = is zsh's command expansion: quoted like any other
    # byte a remote login shell might read as syntax.
    case $1 in
      '' | [=]* | *[!A-Za-z0-9_./=:,+@%-]*) ;;
      *) printf '%s' "$1"; return ;;
    esac
    _q_out='' _q_in=$1
    while :; do
      case $_q_in in
        *\'*)
          _q_out=$_q_out${_q_in%%\'*}\'\\\'\'
          _q_in=${_q_in#*\'}
          ;;
        *) break ;;
      esac
    done
    printf "'%s'" "$_q_out$_q_in"
  }

  # Drops keys typed while disconnected, so a stray ^D or half a command
  # never reaches the next session. With min 0 time 0 a read returns what is
  # buffered, then 0, which cat takes for end of file.
  flush_tty() {
    [ -t 0 ] || return 0
    _tty=$(command stty -g 2>/dev/null) || return 0
    command stty -icanon min 0 time 0 2>/dev/null && command cat >/dev/null
    command stty "$_tty" 2>/dev/null
  }

  main() {
    verbose='' screen='' socket='' pause=3 alive=5 sshopts='' connected=''
    OPTIND=1
    while getopts VSL:I:a:F:o: opt; do
      case $opt in
        V) verbose=1 ;;
        S) screen=1 ;;
        L) socket=$OPTARG ;;
        I) pause=$OPTARG ;;
        a) alive=$OPTARG ;;
        F | o) sshopts="$sshopts -$opt $(q "$OPTARG")" ;;
        *) usage ;;
      esac
    done
    shift $((OPTIND - 1))
    case $# in 1 | 2) ;; *) usage ;; esac
    host=$1 name=${2-default}
    case "$pause,$alive" in ,* | *, | *[!0-9,]*)
      say "-I and -a want whole seconds, not '$pause' and '$alive'"
      exit 2
      ;;
    esac
    need_cmd rosh-ssh

    # The remote side, one round trip: attach or create, keep the session
    # when unattached whatever tmux.conf says, and on a clean end report
    # 100 if the session is gone. `exit $s` keeps sh from exec'ing tmux, so
    # a client killed by a signal comes back as 128+N, not ssh's 255.
    # The scripts hold no quote or backslash, so any login shell passes
    # them through; the session name and socket arrive as "$1" and "$@".
    if [ -n "$screen" ]; then
      [ -z "$socket" ] || err '-L names a tmux socket; screen has none'
      tool=screen
      # shellcheck disable=SC2016 # expanded by the remote sh
      script='n=$1; screen -D -R -S "$n"; s=$?; if [ $s = 0 ] && ! screen -S "$n" -Q select . >/dev/null 2>&1; then s=100; fi; exit $s'
      remote="sh -c $(q "$script") sh $(q "$name")"
    else
      tool=tmux
      # shellcheck disable=SC2016 # expanded by the remote sh
      script='n=$1; shift; f=$(mktemp) || exit 1; tmux "$@" new-session -A -s "$n" ";" set-option destroy-unattached off ";" run-shell "echo '\''#{session_id}'\'' >$f"; s=$?; id=$(cat "$f"); rm -f "$f"; if [ $s = 0 ] && [ -n "$id" ] && ! tmux "$@" has-session -t "$id" 2>/dev/null; then s=100; fi; exit $s'
      remote="sh -c $(q "$script") sh $(q "$name")${socket:+ -L $(q "$socket")}"
    fi

    # ssh exits 255 both when it cannot connect and when a live link drops.
    # LocalCommand runs only once ssh is logged in: its mark tells the two apart.
    tmp=$(command mktemp -d "${TMPDIR:-/tmp}/rosh.XXXXXX") || err 'mktemp failed'
    trap 'command rm -rf "$tmp"' EXIT
    trap 'exit 130' INT HUP TERM
    case $tmp in *[\'%\\]*) err "TMPDIR has a quote, % or backslash: $tmp" ;; esac
    eval "set -- $sshopts" # words made by q: each reads back as itself
    set -- -t -o "ServerAliveInterval=$alive" -o ServerAliveCountMax=1 \
      -o PermitLocalCommand=yes -o "LocalCommand=touch '$tmp/up'" \
      "$@" -- "$host" "$remote"

    while :; do
      command rm -f "$tmp/up"
      if [ -n "$verbose" ]; then
        line=rosh-ssh
        for w in "$@"; do line="$line $(q "$w")"; done
        say "+ $line"
      fi
      command rosh-ssh "$@"
      st=$?
      [ -e "$tmp/up" ] && connected=1
      case $st in
        0) what="detached; session '$name' is still running" end=0 ;;
        100) what="the remote shell exited; session '$name' is gone" end=0 ;;
        137) what="the remote $tool client was killed by SIGKILL, most likely by the OOM killer on $host (see dmesg there); reconnecting..." end= ;;
        255)
          if [ -n "$connected" ]; then
            what="connection to $host lost; reconnecting..." end=
          else
            what="ssh could not set up the session on $host (its message is above)" end=255
          fi
          ;;
        126 | 127) what="$tool not found or not runnable on $host (exit $st)" end=$st ;;
        1) what="$tool on $host failed (its message is above; 'server exited unexpectedly' or 'lost server' means the $tool server was killed, often by the OOM killer)" end=1 ;;
        *)
          if [ "$st" -gt 128 ]; then
            what="the remote $tool client was killed by signal $((st - 128))" end=$st
          else
            what="ssh exited with status $st" end=$st
          fi
          ;;
      esac
      if [ -n "$verbose" ]; then say "rosh-ssh exited $st: $what"; else say "$what"; fi
      [ -n "$end" ] && return "$end"
      [ "$pause" -gt 0 ] && { command sleep "$pause" || exit 130; }
      flush_tty
    done
  }

  main "$@"
)
