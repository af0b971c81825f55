# rosh: a tmux (or screen) session on HOST that outlives dropped connections.
#
#   rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [ssh options] HOST [SESSION]
#
# Source this file from ~/.bashrc, ~/.zshrc, ~/.kshrc or $ENV (sh, dash):
#   . ~/.local/share/rosh/rosh.sh
# It defines one function, rosh, which runs rosh-ssh (found on PATH) in a loop.
# The fish function runs this one. POSIX sh: check with `dash -n` and
# `shellcheck -s sh`.

# The body is a subshell: its variables, helpers, traps and `set -u` never
# reach the calling shell.
rosh() (
  set -u

  say() { printf 'rosh: %s\n' "$*" >&2; }
  err() { say "$*"; exit 1; }
  synopsis='usage: rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [ssh options] HOST [SESSION]'
  usage() {
    say "$synopsis"
    exit 2
  }
  help() {
    cat <<EOF
$synopsis

Attaches to tmux session SESSION (default: "default") on HOST over ssh, and
reattaches whenever the connection drops, until you detach or the session ends.

  -V          print each rosh-ssh command line and its exit status
  -S          use screen instead of tmux
  -L SOCKET   the remote tmux socket name (tmux -L); not a forward: forward
              with -o 'LocalForward PORT HOST:PORT' or in ~/.ssh/config
  -I SECONDS  pause before reconnecting (default 1; doubles up to 60 while
              the server answers but refuses)
  -a SECONDS  ServerAliveInterval unless you set one (default 5)
ssh options, passed to ssh:
  -p PORT  -l USER  -i FILE  -J JUMP  -F FILE  -o OPTION  -A  -C  -4  -6  -v
  -O WORD     pass WORD to ssh as one more argument (any other ssh option)
Your -o options and ~/.ssh/config win over rosh's defaults (ServerAliveInterval,
ServerAliveCountMax=1, a 1 s connect timeout per attempt while reconnecting).
EOF
    exit 0
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

  # rosh's defaults go into `dflt` (-o words, quoted) for what ssh -G shows
  # the user left at ssh's own default (the same query with no config at
  # all): ssh keeps the first value it obtains, so a default given on the
  # command line would beat the user's ssh_config. `proxy` gets the
  # ProxyCommand for reconnecting, unless the user has a ProxyCommand or
  # ProxyJump. Runs in the loop's shell: not in a command substitution.
  # (A user's setting equal to ssh's default is taken for no setting.)
  defaults() {
    dflt='' proxy=''
    mine=$(command rosh-ssh -G "$@" -- "$host" 2>/dev/null) || return 0
    # BatchMode changes ServerAliveInterval's default (readconf.c: 300).
    batch=$(get "$mine" batchmode)
    base=$(command rosh-ssh -F /dev/null -o "BatchMode=${batch:-no}" -G -- "$host" 2>/dev/null) || return 0
    for key in serveraliveinterval:ServerAliveInterval=$alive \
      serveralivecountmax:ServerAliveCountMax=1; do
      k=${key%%:*}
      [ "$(get "$mine" "$k")" = "$(get "$base" "$k")" ] && dflt="$dflt -o ${key#*:}"
    done
    timeout=$(get "$mine" connecttimeout)
    [ "$timeout" = "$(get "$base" connecttimeout)" ] && timeout=1
    if [ -z "$(get "$mine" proxycommand)$(get "$mine" proxyjump)" ]; then
      # Each TCP attempt bounded, a fresh one every second: the kernel's
      # SYN backoff never delays the reattach once the link returns.
      proxy="ProxyCommand=$(q "$(command -v rosh-ssh)") --proxy %h %p --fdpass --wait 86400 --connect-timeout $timeout"
    fi
  }
  # The value of keyword $2 in ssh -G's output $1.
  get() { printf '%s\n' "$1" | command sed -n "s/^$2 //p" | command sed 1q; }

  main() {
    case ${1-} in --help | -h) help ;; esac
    verbose='' screen='' socket='' pause=1 alive=5 sshopts='' connected='' proxy=''
    OPTIND=1
    while getopts VSL:I:a:F:o:p:l:i:J:O:AC46v opt; do
      case $opt in
        V) verbose=1 ;;
        S) screen=1 ;;
        L) socket=$OPTARG ;;
        I) pause=$OPTARG ;;
        a) alive=$OPTARG ;;
        F | o | p | l | i | J) sshopts="$sshopts -$opt $(q "$OPTARG")" ;;
        O) sshopts="$sshopts $(q "$OPTARG")" ;;
        A | C | 4 | 6 | v) sshopts="$sshopts -$opt" ;;
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
    case $socket in */* | *:*)
      say "-L names the remote tmux socket, not a forward: '$socket'"
      say "forward with -o 'LocalForward PORT HOST:PORT' or in ~/.ssh/config"
      exit 2
      ;;
    esac
    need_cmd rosh-ssh

    # This loop's id on the server: the tmux client of its previous
    # connection, left attached by a link that died, is detached on reattach.
    loop=$(command od -An -N6 -tx1 /dev/urandom 2>/dev/null | command tr -d ' \n')
    [ -n "$loop" ] || loop=$$-$(command date +%s)

    # The remote side, one round trip: attach or create, keep the session
    # when unattached whatever tmux.conf says, and on a clean end report
    # 100 if the session is gone. `exit $s` keeps sh from exec'ing tmux, so
    # a client killed by a signal comes back as 128+N, not ssh's 255.
    # The session name, loop id and socket arrive as "$1", "$2" and "$@".
    if [ -n "$screen" ]; then
      [ -z "$socket" ] || err '-L names a tmux socket; screen has none'
      tool=screen
      # shellcheck disable=SC2016 # expanded by the remote sh
      script='n=$1; screen -D -R -S "$n"; s=$?; if [ $s = 0 ] && ! screen -S "$n" -Q select . >/dev/null 2>&1; then s=100; fi; exit $s'
      remote="sh -c $(q "$script") sh $(q "$name")"
    else
      tool=tmux
      # The client is known by tty and pid together: a tty freed by a dead
      # client may be another terminal's by now.
      # shellcheck disable=SC2016 # expanded by the remote sh
      script='n=$1; k=@rosh-$2; shift 2; o=$(tmux "$@" show-options -gqv "$k" 2>/dev/null); if [ -n "$o" ]; then tmux "$@" list-clients -F "#{client_tty} #{client_pid}" 2>/dev/null | while read -r t p; do if [ "$t $p" = "$o" ]; then tmux "$@" detach-client -t "$t"; fi; done; fi; f=$(mktemp) || exit 1; tmux "$@" new-session -A -s "$n" ";" set-option destroy-unattached off ";" set-option -gF "$k" "#{client_tty} #{client_pid}" ";" run-shell "echo '\''#{session_id}'\'' >$f"; s=$?; id=$(cat "$f"); rm -f "$f"; if [ $s = 0 ] && [ -n "$id" ] && ! tmux "$@" has-session -t "$id" 2>/dev/null; then s=100; fi; exit $s'
      remote="sh -c $(q "$script") sh $(q "$name") $loop${socket:+ -L $(q "$socket")}"
    fi

    # ssh exits 255 both when it cannot connect and when a live link drops.
    # LocalCommand runs only once ssh is logged in: its mark tells the two apart.
    tmp=$(command mktemp -d "${TMPDIR:-/tmp}/rosh.XXXXXX") || err 'mktemp failed'
    trap 'command rm -rf "$tmp"' EXIT
    trap 'exit 130' INT HUP TERM
    case $tmp in *[\'%\\]*) err "TMPDIR has a quote, % or backslash: $tmp" ;; esac
    # Run by ssh once logged in, before the session reads the terminal: the
    # mark, and the keys typed while ssh waited for the link are dropped.
    command cat >"$tmp/login" <<'EOF'
: >"$1/up"
[ -t 0 ] || exit 0
s=$(stty -g 2>/dev/null) || exit 0
stty -icanon min 0 time 0 2>/dev/null && cat >/dev/null 2>&1
stty "$s" 2>/dev/null
exit 0
EOF
    eval "set -- $sshopts" # words made by q: each reads back as itself
    defaults "$@"
    eval "set -- $dflt \"\$@\"" # plain words
    set -- -t -o PermitLocalCommand=yes -o "LocalCommand=sh '$tmp/login' '$tmp'" \
      "$@" -- "$host" "$remote"

    wait=$pause
    while :; do
      command rm -f "$tmp/up"
      if [ -n "$verbose" ]; then
        line=rosh-ssh
        for w in "$@"; do line="$line $(q "$w")"; done
        say "+ $line"
      fi
      command rosh-ssh "$@"
      st=$?
      up=''
      [ -e "$tmp/up" ] && up=1 connected=1
      case $st in
        0) what="detached; session '$name' is still running" end=0 ;;
        100) what="the remote shell exited; session '$name' is gone" end=0 ;;
        137) what="the remote $tool client was killed by SIGKILL, most likely by the OOM killer on $host (see dmesg there); reconnecting..." end= ;;
        255)
          if [ -n "$up" ]; then
            what="connection to $host lost; reconnecting..." end=
          elif [ -n "$connected" ]; then
            what="$host answered but the session did not start; retrying in ${wait}s..." end=
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
      [ "$wait" -gt 0 ] && { command sleep "$wait" || exit 130; }
      # Polite to a server that answers but refuses (auth, MaxStartups):
      # the pause doubles up to a minute until a session starts again.
      if [ -n "$up" ]; then
        wait=$pause
      else
        wait=$((wait < 1 ? 1 : wait * 2 > 60 ? 60 : wait * 2))
      fi
      flush_tty
      # From the second attempt on, the host is waited for by rosh-ssh's own
      # connect loop (a fresh attempt every second), not by ssh's.
      if [ -n "$proxy" ]; then
        set -- -o "$proxy" -o ProxyUseFdpass=yes "$@"
        proxy=''
      fi
    done
  }

  main "$@"
)
