# fish completion for rosh-ssh: exactly ssh's (fish's own, through -w), plus
# rosh-ssh's long options before the first ssh argument.

# True while every word so far is one of rosh-ssh's own options.
function __rosh_ssh_own_options
    set -l words (commandline -opc)
    set -e words[1]
    set -l skip
    for w in $words
        if set -q skip[1]
            set -e skip[1]
            continue
        end
        switch $w
            case --verbose --dry-run --require-forward --no-restore --check --remote '--ssh=*'
            case --ssh
                set skip 1
            case '*'
                return 1
        end
    end
end

complete -c rosh-ssh -w ssh
complete -c rosh-ssh -n __rosh_ssh_own_options -l help -d 'Print the usage'
complete -c rosh-ssh -n __rosh_ssh_own_options -l version -d 'Print the version'
complete -c rosh-ssh -n __rosh_ssh_own_options -l verbose -d 'Explain each decision (ROSH_VERBOSE=1)'
complete -c rosh-ssh -n __rosh_ssh_own_options -l dry-run -d 'Print the ssh command line and each forward'
complete -c rosh-ssh -n __rosh_ssh_own_options -l require-forward -d 'A taken port is fatal (ROSH_REQUIRE_FORWARD=1)'
complete -c rosh-ssh -n __rosh_ssh_own_options -l no-restore -d 'Do not restore a dropped forward (ROSH_RESTORE=0)'
complete -c rosh-ssh -n __rosh_ssh_own_options -l ssh -r -F -d 'The real ssh (ROSH_SSH)'
complete -c rosh-ssh -n __rosh_ssh_own_options -l check -d 'Report forwards and probes, connect nowhere'
complete -c rosh-ssh -n __rosh_ssh_own_options -l remote -d 'With --check: ask the server too'
complete -c rosh-ssh -n __rosh_ssh_own_options -l proxy -d 'ProxyCommand mode: --proxy HOST PORT'
complete -c rosh-ssh -n __rosh_ssh_own_options -l rosh -d "The rosh function's engine: --rosh [STATE ARGS]"
complete -c rosh-ssh -n '__fish_seen_argument -l proxy' -l fdpass -d 'Hand the socket to ssh (ProxyUseFdpass)'
complete -c rosh-ssh -n '__fish_seen_argument -l proxy' -l wait -x -d 'Retry an unreachable host for SECONDS'
complete -c rosh-ssh -n '__fish_seen_argument -l proxy' -l connect-timeout -x -d 'Bound each attempt (ROSH_SSH_CONNECT_TIMEOUT)'
