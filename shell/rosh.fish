# rosh: a tmux (or screen) session on HOST that outlives dropped connections.
#
#   rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [-F FILE] [-o OPTION]... HOST [SESSION]
#
# Source it from ~/.config/fish/config.fish (source ~/.local/share/rosh/rosh.fish)
# or copy it to ~/.config/fish/functions/. The same loop as rosh.sh; see there.

function rosh --description 'ssh into a tmux session on HOST, reconnecting when the link drops'
    argparse -n rosh -s V S L= 'I=!_validate_int --min 0' 'a=!_validate_int --min 0' F= o=+ -- $argv
    or return 2
    if not set -q argv[1]; or set -q argv[3]
        echo 'usage: rosh [-V] [-S] [-L SOCKET] [-I SECONDS] [-a SECONDS] [-F FILE] [-o OPTION]... HOST [SESSION]' >&2
        return 2
    end
    if not command -q rosh-ssh
        echo "rosh: need 'rosh-ssh' (command not found)" >&2
        return 1
    end
    set -l host $argv[1]
    set -l name default
    set -q argv[2]; and set name $argv[2]
    set -l pause 3
    set -q _flag_I; and set pause $_flag_I
    set -l alive 5
    set -q _flag_a; and set alive $_flag_a

    # One word quoted for the remote POSIX shell: it's -> 'it'\''s'.
    function __rosh_q
        printf "'%s'" (string replace -a "'" "'\\''" -- $argv[1] | string collect)
    end

    # The remote side in one round trip; see rosh.sh for why each piece is there.
    set -l tool tmux
    set -l script 'n=$1; shift; f=$(mktemp) || exit 1; tmux "$@" new-session -A -s "$n" ";" set-option destroy-unattached off ";" run-shell "echo \'#{session_id}\' >$f"; s=$?; id=$(cat "$f"); rm -f "$f"; if [ $s = 0 ] && [ -n "$id" ] && ! tmux "$@" has-session -t "$id" 2>/dev/null; then s=100; fi; exit $s'
    set -l extra
    set -q _flag_L; and set extra -L (__rosh_q $_flag_L)
    if set -q _flag_S
        if set -q _flag_L
            echo 'rosh: -L names a tmux socket; screen has none' >&2
            return 1
        end
        set tool screen
        set script 'n=$1; screen -D -R -S "$n"; s=$?; if [ $s = 0 ] && ! screen -S "$n" -Q select . >/dev/null 2>&1; then s=100; fi; exit $s'
    end
    set -l remote "sh -c "(__rosh_q $script)" sh "(__rosh_q $name)" $extra"

    set -l args -t -o ServerAliveInterval=$alive -o ServerAliveCountMax=1
    set -q _flag_F; and set -a args -F $_flag_F
    for o in $_flag_o
        set -a args -o $o
    end
    set -a args -- $host $remote
    set -l tmpdir /tmp
    set -q TMPDIR[1]; and set tmpdir $TMPDIR
    # ssh expands % in LocalCommand, and the mark is quoted in single quotes.
    if string match -q -r "['%\\\\]" -- $tmpdir
        echo "rosh: TMPDIR has a quote, % or backslash: $tmpdir" >&2
        return 1
    end

    set -l connected
    set -l st
    while true
        # LocalCommand runs once ssh is logged in: it tells a lost link (255
        # after the mark) from a failure to connect (255 without it). A
        # fresh directory per attempt: Ctrl-C in the pause leaves nothing.
        set -l tmp (command mktemp -d $tmpdir/rosh.XXXXXX); or return 1
        set -l mark -o PermitLocalCommand=yes -o "LocalCommand=touch '$tmp/up'"
        if set -q _flag_V
            echo 'rosh: + rosh-ssh' (string escape -- $mark $args) >&2
        end
        command rosh-ssh $mark $args
        set st $status
        test -e $tmp/up; and set connected 1
        command rm -rf $tmp

        set -l what
        set -l stop
        switch $st
            case 0
                set what "detached; session '$name' is still running"
                set stop 0
            case 100
                set what "the remote shell exited; session '$name' is gone"
                set stop 0
            case 137
                set what "the remote $tool client was killed by SIGKILL, most likely by the OOM killer on $host (see dmesg there); reconnecting..."
            case 255
                if set -q connected[1]
                    set what "connection to $host lost; reconnecting..."
                else
                    set what "ssh could not set up the session on $host (its message is above)"
                    set stop 255
                end
            case 126 127
                set what "$tool not found or not runnable on $host (exit $st)"
                set stop $st
            case 1
                set what "$tool on $host failed (its message is above; 'server exited unexpectedly' or 'lost server' means the $tool server was killed, often by the OOM killer)"
                set stop 1
            case '*'
                if test $st -gt 128
                    set what "the remote $tool client was killed by signal "(math $st - 128)
                else
                    set what "ssh exited with status $st"
                end
                set stop $st
        end
        if set -q _flag_V
            echo "rosh: rosh-ssh exited $st: $what" >&2
        else
            echo "rosh: $what" >&2
        end
        if set -q stop[1]
            return $stop
        end
        # Ctrl-C here ends the loop: fish cancels the function with sleep.
        if test $pause -gt 0
            command sleep $pause; or break
        end
        # Keys typed while disconnected must not reach the next session.
        if isatty stdin
            set -l saved (command stty -g)
            command stty -icanon min 0 time 0; and command cat >/dev/null
            command stty $saved
        end
    end
    return 130
end
