# fish completion for the rosh function: its options, then one host the way
# ssh completes hosts (ssh_config aliases, known hosts; from the file -F
# names, when it names one), then nothing.

# rosh's grammar: its own letters (-V -S flags; -L -I -a -O with a value)
# over ssh's getopt tables, as rosh-ssh reads it, and its long option
# --keep-sshd, a word of its own.
set -g __rosh_arg_letters bceilmopwBDEFJQRWLIaO

# The operands (host, session) so far, and the file -F names, by reading
# the words as getopt does: prints "N FILE".
function __rosh_words
    set -l words (commandline -opc)
    set -e words[1]
    set -l args 0
    set -l file
    set -l skip
    for w in $words
        if set -q skip[1]
            test $skip = F; and set file $w
            set skip
            continue
        end
        if test $args -gt 0; or not string match -qr -- '^-.' $w
            set args (math $args + 1)
            continue
        end
        # `--` and rosh's long option: no letters, no operand.
        string match -q -- '--*' $w; and continue
        # The first letter that takes a value ends the cluster.
        set -l m (string match -r -- "^-[^$__rosh_arg_letters]*([$__rosh_arg_letters])(.*)\$" $w)
        if set -q m[2]
            if test -n "$m[3]"
                test $m[2] = F; and set file $m[3]
            else
                set skip $m[2]
            end
        end
    end
    echo $args $file
end

# True until a host is on the command line (options and their values skipped).
function __rosh_no_host_yet
    set -l w (string split -m 1 ' ' -- (__rosh_words))
    test $w[1] -eq 0
end

# Hosts: from the file -F names, else as ssh's completion finds them.
function __rosh_hosts
    set -l w (string split -m 1 ' ' -- (__rosh_words))
    if set -q w[2]; and test -n "$w[2]"
        set -l file (string replace -r '^~/' $HOME/ -- $w[2])
        test -r $file; or return
        string replace -rfi '^\s*host\s+' '' <$file | string split -n ' ' | string match -rv '[*?!]'
    else
        __fish_complete_user_at_hosts
    end
end

complete -c rosh -f
complete -c rosh -n __rosh_no_host_yet -d Remote -xa '(__rosh_hosts)'
complete -c rosh -s V -d 'Print each ssh command and its exit status'
complete -c rosh -s S -d 'Use GNU screen instead of tmux'
complete -c rosh -s L -x -d 'Remote tmux socket name'
complete -c rosh -s I -x -d 'Seconds before reconnecting (1)'
complete -c rosh -s a -x -d 'ServerAliveInterval in seconds (5)'
complete -c rosh -l keep-sshd -d "On reattach, leave the previous connection's sshd running"
complete -c rosh -s F -r -F -d 'ssh config file'
complete -c rosh -s o -x -d 'ssh option'
complete -c rosh -s p -x -d 'Port on the remote host'
complete -c rosh -s J -x -a '(__fish_complete_user_at_hosts)' -d 'Jump host'
complete -c rosh -s l -x -a '(__fish_complete_users)' -d 'Remote user'
complete -c rosh -s i -r -F -d 'Identity file'
complete -c rosh -s A -d 'Forward the authentication agent'
complete -c rosh -s 4 -d 'IPv4 only'
complete -c rosh -s 6 -d 'IPv6 only'
complete -c rosh -s C -d 'Compress'
complete -c rosh -s v -d 'ssh verbose mode'
complete -c rosh -s O -x -d 'One more ssh argument, as it is'
