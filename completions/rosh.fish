# fish completion for the rosh function: its options, then one host the way
# ssh completes hosts (ssh_config aliases, known hosts), then nothing.

# True until a host is on the command line (options and their values skipped).
function __rosh_no_host_yet
    set -l words (commandline -opc)
    set -e words[1]
    set -l skip
    for w in $words
        if set -q skip[1]
            set -e skip[1]
            continue
        end
        if string match -qr -- '^-.*[LIaFopJli]$' $w
            set skip 1
        else if not string match -q -- '-*' $w
            return 1
        end
    end
end

complete -c rosh -f
complete -c rosh -n __rosh_no_host_yet -d Remote -xa '(__fish_complete_user_at_hosts)'
complete -c rosh -s V -d 'Print each ssh command and its exit status'
complete -c rosh -s S -d 'Use GNU screen instead of tmux'
complete -c rosh -s L -x -d 'Remote tmux socket name'
complete -c rosh -s I -x -d 'Seconds before reconnecting (1)'
complete -c rosh -s a -x -d 'ServerAliveInterval in seconds (5)'
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
complete -c rosh -s O -x -d 'Any other ssh argument'
