# rosh: a tmux (or screen) session on HOST that outlives dropped connections.
#
#   rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [ssh options] HOST [SESSION]
#
# Source this file from ~/.bashrc, ~/.zshrc, ~/.kshrc or $ENV (sh, dash):
#   . ~/.local/share/rosh/rosh.sh
# It defines one function, rosh. The session's logic is rosh-ssh's (found on
# PATH, `rosh-ssh --rosh`, see rosh(1)): each turn of this loop is one
# attempt, and rosh-ssh exits 75 while there should be another. It keeps the
# loop's state in a private directory it makes first and removes at the end.
# POSIX sh (also bash 3.2, zsh, ksh, dash): check with `dash -n` and
# `shellcheck -s sh`.

# The body is a subshell: its variables and traps never reach the calling
# shell. On Ctrl-C it waits for rosh-ssh, which puts the terminal back.
rosh() (
  trap 'exit 130' INT HUP TERM
  s=$(command rosh-ssh --rosh) || exit
  while :; do
    command rosh-ssh --rosh "$s" "$@"
    st=$?
    [ "$st" = 75 ] && [ -d "$s" ] || exit "$st"
  done
)
