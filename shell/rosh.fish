# rosh: a tmux (or screen) session on HOST that outlives dropped connections.
#
#   rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [ssh options] HOST [SESSION]
#
# Source it from ~/.config/fish/config.fish (source ~/.local/share/rosh/rosh.fish)
# or link it into ~/.config/fish/functions/. The session's logic is
# rosh-ssh's (found on PATH, `rosh-ssh --rosh`, see rosh(1)): each turn of
# this loop is one attempt, and rosh-ssh exits 75 while there should be
# another. It keeps the loop's state in a private directory it makes first
# and removes at the end.

function rosh --description 'ssh into a tmux session on HOST, reconnecting when the link drops'
    set -l state (command rosh-ssh --rosh); or return
    while true
        command rosh-ssh --rosh $state $argv
        set -l st $status
        if test $st -ne 75; or not test -d $state
            return $st
        end
    end
end
