#!/usr/bin/env bash
# Mutation testing with cargo-mutants over the modules listed in
# .cargo/mutants.toml, with the tests named there. Not part of CI: all of
# it takes hours on two cores; one module or one shard fits in well under
# an hour. Runs at the lowest CPU priority. Results land in mutants.out/
# (caught.txt, missed.txt, timeout.txt, unviable.txt).
#
#   cargo install cargo-mutants           # once, from crates.io
#   bench/mutants.sh plan                 # one module (or plan,matcher)
#   bench/mutants.sh --shard 1/10         # a tenth of all of them
#   bench/mutants.sh                      # everything (hours)
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
modules=(argv forward plan config matcher launch blame supervise/mod supervise/log supervise/restore)
args=()
if [ "$#" -gt 0 ] && [[ $1 != -* ]]; then
  want=",$1,"
  shift
  for m in "${modules[@]}"; do
    [[ $want == *",$m,"* ]] || args+=(-e "src/$m.rs")
  done
fi
start=$(date +%s)
status=0
nice -n 19 cargo mutants --jobs 1 ${args[@]+"${args[@]}"} "$@" || status=$?
end=$(date +%s)
for f in caught missed timeout unviable; do
  printf '%s %s\n' "$f" "$(wc -l <"mutants.out/$f.txt" 2>/dev/null || echo 0)"
done
echo "wall time: $((end - start)) s"
# cargo-mutants exits 2 when mutants survived, 3 on timeouts: a report, not an error.
case $status in 0 | 2 | 3) exit 0 ;; *) exit "$status" ;; esac
