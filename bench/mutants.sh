#!/usr/bin/env bash
# Mutation testing with cargo-mutants, in two parts, each with the tests
# named in its config:
#   leaves      argv, forward, plan, policy, config, matcher, plumbing,
#               switch, memo                           (.cargo/mutants.toml)
#   supervisor  connect, launch, blame, say, events/*, supervise/*
#                                                      (.cargo/mutants-supervisor.toml)
# Not part of CI. On two cores the first part takes about 29 minutes, the
# second about 15 (bench/RESULTS.md); at the lowest CPU priority, two mutants at a time
# (JOBS=1 for one). Each part writes mutants.out.PART/mutants.out/
# (caught.txt, missed.txt, timeout.txt, unviable.txt).
#
#   cargo install cargo-mutants           # once, from crates.io
#   bench/mutants.sh                      # both parts
#   bench/mutants.sh plan                 # one module (or plan,blame)
#   bench/mutants.sh --iterate            # only what was not caught last time
#   bench/mutants.sh -- --shard 1/4       # extra cargo-mutants options
#
# (cargo-mutants adds `-f` globs to the config's examine_globs rather than
# narrowing them: a module is chosen here by excluding the others.)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "mutants: cargo-mutants is missing: cargo install cargo-mutants" >&2
  exit 1
fi
# cargo-mutants builds each mutant in its own copy of the tree: a shared
# CARGO_TARGET_DIR would make the copies fight over one lock.
unset CARGO_TARGET_DIR
# The lab tests fail rather than skip under CI=true: a mutant run must not
# count a skipped test as a pass.
export CI=true

leaves=(argv forward plan policy config matcher plumbing switch memo)
supervisor=(connect launch blame say events/mod events/linux events/portable supervise/mod supervise/log supervise/passon supervise/restore)
want=""
extra=()
while [ "$#" -gt 0 ]; do
  case $1 in
    --iterate) extra+=(--iterate) ;;
    --) shift; extra+=("$@"); break ;;
    -*) echo "mutants: unknown option $1 (cargo-mutants options go after --)" >&2; exit 2 ;;
    *) want=",$1," ;;
  esac
  shift
done

# part NAME CONFIG MODULE...: runs cargo-mutants over the chosen modules of one part.
total_start=$(date +%s)
status=0
part() {
  local name=$1 config=$2 m args=() chosen=0
  shift 2
  for m in "$@"; do
    if [ -z "$want" ] || [[ $want == *",$m,"* ]]; then
      chosen=1
    else
      args+=(-e "src/$m.rs")
    fi
  done
  [ "$chosen" = 1 ] || return 0
  local start st=0 out="mutants.out.$name"
  start=$(date +%s)
  nice -n 19 cargo mutants --config "$config" --jobs "${JOBS:-2}" -o "$out" \
    ${args[@]+"${args[@]}"} ${extra[@]+"${extra[@]}"} || st=$?
  printf '%s:' "$name"
  for f in caught missed timeout unviable; do
    printf ' %s %s' "$f" "$(wc -l <"$out/mutants.out/$f.txt" 2>/dev/null || echo 0)"
  done
  printf '; %s s\n' "$(($(date +%s) - start))"
  # cargo-mutants exits 2 when mutants survived, 3 on timeouts: a report, not an error.
  case $st in 0 | 2 | 3) ;; *) status=$st ;; esac
}
part leaves .cargo/mutants.toml "${leaves[@]}"
part supervisor .cargo/mutants-supervisor.toml "${supervisor[@]}"
echo "wall time: $(($(date +%s) - total_start)) s; missed: mutants.out.*/mutants.out/missed.txt"
exit "$status"
