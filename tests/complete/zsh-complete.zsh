# zsh-complete.zsh FPATH_DIR SETUP LINE: prints the candidates zsh's completion
# system offers for LINE (one per line), in an interactive zsh on a pty with
# compinit, FPATH_DIR first on fpath and SETUP run before (e.g. an alias).
zmodload zsh/zpty || exit 3
zpty z zsh -f -i || exit 3
zpty -w z "PS1= PROMPT= RPROMPT= ; unsetopt zle_bracketed_paste 2>/dev/null"
zpty -w z "fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "$2"
# Each match is printed between markers; nothing is inserted.
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits __dscr; local i
  if (( $@[(I)-d] )); then __dscr=( "${(@P)${@[$[${@[(i)-d]}+1]]}}" ); fi
  builtin compadd -A __hits "$@"
  (( $#__hits )) || return 1
  for i in $__hits; do print -r -- "<<$i>>"; done
  builtin compadd -Q -U ""
}'
zpty -w z "zstyle ':completion:*' list-grouped false; zstyle ':completion:*' insert-tab false"
zpty -w z "bindkey '^I' complete-word; zle -C __end complete-word __end_f; __end_f() { print -r -- '<<END>>' }; bindkey '^X' __end"
zpty -w z "print -r -- '<<READY>>'"
integer n=0
while zpty -r z line && (( ++n < 10000 )); do [[ $line == '<<READY>>'* ]] && break; done
zpty -w -n z "$3"$'\t'$'\x18'
n=0
while zpty -r z line && (( ++n < 10000 )); do
  [[ $line == *'<<END>>'* ]] && break
  [[ $line == *'<<'*'>>'* ]] || continue
  line=${line#*<<}; print -r -- ${line%%>>*}
done
zpty -d z
