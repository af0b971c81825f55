# rosh: a tmux (or screen) session on HOST that outlives dropped connections.
#
#   rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [ssh options] HOST [SESSION]
#
# Source it from ~/.config/fish/config.fish (source ~/.local/share/rosh/rosh.fish)
# or link it into ~/.config/fish/functions/. The loop itself is rosh.sh's,
# run by sh: it lives in one place. rosh.sh is looked for next to this file
# (symlinks followed), then in ../share/rosh/ beside rosh-ssh on PATH.

function rosh --description 'ssh into a tmux session on HOST, reconnecting when the link drops'
    set -l here (functions --details rosh)
    set -l candidates
    if test -f "$here"
        set -a candidates (path dirname (path resolve $here))/rosh.sh
    end
    set -l bin (command -s rosh-ssh)
    and set -a candidates (path dirname (path resolve $bin))/../share/rosh/rosh.sh
    for f in $candidates
        if test -f $f
            command sh -c '. "$0" && rosh "$@"' $f $argv
            return $status
        end
    end
    echo "rosh: cannot find rosh.sh (next to rosh.fish, or in share/rosh beside rosh-ssh)" >&2
    return 1
end
