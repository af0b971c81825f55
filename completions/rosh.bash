# bash completion for rosh-ssh and rosh (bash-completion 2.x).
# Installed as completions/rosh-ssh and completions/rosh: bash-completion
# loads a file by the command's name, and either defines both.
#
# rosh-ssh completes exactly as ssh does, through bash-completion's own _ssh,
# plus rosh-ssh's long options before the first ssh argument. rosh
# completes its options, then one host the way ssh does, then nothing.

# COMPREPLY=($(compgen ...)) is bash-completion's own idiom; no candidate
# here holds a blank.
# shellcheck disable=SC2207

# Loads bash-completion's ssh completion (_ssh, _ssh_options, ...).
_rosh_load_ssh() {
    declare -F _ssh >/dev/null && return 0
    declare -F __load_completion >/dev/null && __load_completion ssh
    declare -F _ssh >/dev/null
}

_rosh_ssh() {
    local own='--help --version --verbose --dry-run --require-forward --no-restore --ssh --check --remote --proxy --rosh'
    local cur=${COMP_WORDS[COMP_CWORD]} i=1 w
    # Skip rosh-ssh's own options; i ends at the first ssh argument.
    while ((i < COMP_CWORD)); do
        w=${COMP_WORDS[i]}
        case $w in
            --help | --version | --rosh) return 0 ;;
            --verbose | --dry-run | --require-forward | --no-restore | --check | --remote | --ssh=?*) ;;
            --ssh)
                # --ssh PATH, or --ssh=PATH (COMP_WORDBREAKS makes `=` a word)
                [[ ${COMP_WORDS[i + 1]-} == = ]] && ((i++))
                if ((i + 1 == COMP_CWORD)); then
                    declare -F _filedir >/dev/null && _filedir
                    return 0
                fi
                ((i++))
                ;;
            --proxy)
                # --proxy HOST PORT [--fdpass] [--wait S] [--connect-timeout S]
                case $((COMP_CWORD - i)) in
                    1) _rosh_load_ssh && _known_hosts_real -a -- "$cur" ;;
                    2) ;;
                    *) case ${COMP_WORDS[COMP_CWORD - 1]} in
                        --wait | --connect-timeout) ;;
                        *) COMPREPLY=($(compgen -W '--fdpass --wait --connect-timeout' -- "$cur")) ;;
                    esac ;;
                esac
                return 0
                ;;
            *) break ;;
        esac
        ((i++))
    done
    if ((i == COMP_CWORD)) && [[ $cur == --* ]]; then
        COMPREPLY=($(compgen -W "$own" -- "$cur"))
        return 0
    fi
    _rosh_load_ssh || return 0
    # Hand ssh's completion the line as `ssh ARGS`: drop rosh-ssh and its
    # options from COMP_LINE the way bash-completion's _command_offset does.
    local k=$i j
    for ((i = 0; i < k; i++)); do
        for ((j = 0; j <= ${#COMP_LINE}; j++)); do
            [[ $COMP_LINE == "${COMP_WORDS[i]}"* ]] && break
            COMP_LINE=${COMP_LINE:1}
            ((COMP_POINT--))
        done
        COMP_LINE=${COMP_LINE#"${COMP_WORDS[i]}"}
        ((COMP_POINT -= ${#COMP_WORDS[i]}))
    done
    COMP_LINE="ssh$COMP_LINE"
    ((COMP_POINT += 3))
    COMP_WORDS=(ssh "${COMP_WORDS[@]:k}")
    ((COMP_CWORD -= k - 1))
    _ssh ssh "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    if ((COMP_CWORD == 1)) && [[ $cur == -* ]]; then
        COMPREPLY+=($(compgen -W "$own" -- "$cur"))
    fi
}

# rosh's grammar: its own letters (-V -S flags; -L -I -a -O with a value)
# over ssh's getopt tables, as rosh-ssh reads it, and its long option
# --keep-sshd, a word of its own.
_rosh_arg_letters=bceilmopwBDEFJQRWLIaO

_rosh() {
    # shellcheck disable=SC2034 # _init_completion sets prev too
    local cur prev words cword
    # Words whole across `=` and `:`, so that `-o Key=value` is two words.
    _init_completion -n =: || return
    _rosh_load_ssh || return 0
    # ssh -o Key=value: complete the value as ssh does.
    _ssh_suboption_check ssh && return 0
    # Read the words as getopt does: which letter wants the current word,
    # the config file -F names (the hosts come from it), how many operands.
    local args=0 want='' i j w c config=()
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if ((args > 0)) || [[ $w != -?* ]]; then
            ((args++))
            continue
        fi
        # `--` and rosh's long option: no letters, no operand.
        [[ $w == --* ]] && continue
        for ((j = 1; j < ${#w}; j++)); do
            c=${w:j:1}
            [[ $_rosh_arg_letters == *"$c"* ]] || continue
            if ((j + 1 < ${#w})); then
                [[ $c == F ]] && config=(-F "${w:j+1}")
            elif ((i + 1 == cword)); then
                want=$c
            else
                ((i++))
                [[ $c == F ]] && config=(-F "${words[i]}")
            fi
            break
        done
    done
    # shellcheck disable=SC2088 # the tilde is matched, then expanded
    [[ ${config[1]-} == "~/"* ]] && config[1]=$HOME/${config[1]#"~/"}
    case $want in
        '') ;;
        [FiE]) _filedir ;;
        J) _known_hosts_real -a "${config[@]}" -- "$cur" ;;
        l) COMPREPLY=($(compgen -u -- "$cur")) ;;
        o) _ssh_options ssh ;;
    esac
    [[ -n $want ]] && return 0
    if ((args == 0)); then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '-V -S -L -I -a --keep-sshd -F -o -p -J -l -i -A -4 -6 -C -v -O' -- "$cur"))
        else
            _known_hosts_real -a "${config[@]}" -- "$cur"
        fi
    fi
}

complete -F _rosh_ssh rosh-ssh
complete -F _rosh rosh
