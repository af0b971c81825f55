#!/bin/sh
# bench/record.sh NAME [ARGS...]: run a benchmark and record what it printed.
#
# NAME is one of the examples whose figures the README shows: bench,
# restore_bench, proxy_bench, reattach_bench (that one as root). ARGS go to
# the example (`cargo run --release --example NAME -- ARGS`). When it
# succeeds:
#   - bench/RESULTS.md gets a section "### NAME, DATE" under "Recorded
#     runs" (newest first) with the command and its whole output;
#   - README.md's block <!-- figures: NAME --> ... <!-- end figures: NAME -->
#     gets the run's `Run:` line (when and where) and its table rows.
# tests/docs.rs checks that every line of those README blocks is a line of
# a recorded run, so the README shows only figures a run printed. Add a
# note on the run (a busy machine, what changed) under its section by hand.
set -u

say() { printf 'record.sh: %s\n' "$*"; }
err() {
  printf 'record.sh: error: %s\n' "$*" >&2
  exit 1
}

MARK='<!-- bench/record.sh adds each run below this line, newest first -->'

main() {
  [ $# -ge 1 ] || err 'usage: bench/record.sh NAME [ARGS...]'
  name=$1
  shift
  case $name in
    bench | restore_bench | proxy_bench | reattach_bench) ;;
    -h | --help)
      say 'usage: bench/record.sh NAME [ARGS...]   (NAME: bench, restore_bench, proxy_bench, reattach_bench)'
      exit 0
      ;;
    *) err "no such benchmark: $name (bench, restore_bench, proxy_bench, reattach_bench)" ;;
  esac
  command -v cargo >/dev/null 2>&1 || err "need 'cargo' (command not found)"
  src=$(cd "$(dirname "$0")/.." && pwd) || err 'cannot find the source directory'
  results=$src/bench/RESULTS.md
  readme=$src/README.md
  grep -qxF "$MARK" "$results" || err "bench/RESULTS.md has no line $MARK"
  for m in "<!-- figures: $name -->" "<!-- end figures: $name -->"; do
    grep -qxF "$m" "$readme" || err "README.md has no line $m"
  done

  tmp=$(mktemp -d "${TMPDIR:-/tmp}/rosh-record.XXXXXX") || err 'mktemp failed'
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 130' INT HUP TERM

  # reattach_bench runs the release binary beside it and builds nothing.
  (cd "$src" && command cargo build --release --locked --quiet --bin rosh-ssh) ||
    err 'cargo build --release failed'
  cmd="cargo run --release --example $name"
  [ $# -gt 0 ] && cmd="$cmd -- $*"
  say "running: $cmd (its output is recorded once it ends)"
  (cd "$src" && command cargo run --release --locked --quiet --example "$name" -- "$@") >"$tmp/out" ||
    {
      cat "$tmp/out"
      err "$name failed: nothing recorded"
    }
  cat "$tmp/out"

  run=$(head -n 1 "$tmp/out")
  case $run in "Run: $name, "*) ;; *) err "$name printed no Run: line first: nothing recorded" ;; esac
  grep -q '^|' "$tmp/out" || err "$name printed no table: nothing recorded"
  # "Run: bench, 2026-12-07 13:05 UTC; ..." -> "bench, 2026-12-07 13:05 UTC"
  heading=${run#Run: }
  heading=${heading%%;*}

  {
    printf '### %s\n\n' "$heading"
    # shellcheck disable=SC2016 # the backquotes are Markdown's
    printf '`%s`, recorded by `bench/record.sh`:\n\n' "$cmd"
    printf '```text\n'
    cat "$tmp/out"
    printf '```\n'
  } >"$tmp/section"
  # After the mark: a blank line, the section; the blank line that followed
  # the mark now follows the section.
  awk -v mark="$MARK" -v section="$tmp/section" '
    { print }
    $0 == mark {
      print ""
      while ((getline l < section) > 0) print l
      close(section)
    }
  ' "$results" >"$tmp/results" || err 'cannot write the new bench/RESULTS.md'

  {
    printf '%s\n\n' "$run"
    grep '^|' "$tmp/out"
  } >"$tmp/block"
  awk -v begin="<!-- figures: $name -->" -v end="<!-- end figures: $name -->" -v block="$tmp/block" '
    $0 == begin {
      print
      while ((getline l < block) > 0) print l
      close(block)
      inside = 1
      next
    }
    $0 == end { inside = 0 }
    !inside { print }
  ' "$readme" >"$tmp/readme" || err 'cannot write the new README.md'

  cat "$tmp/results" >"$results" || err "cannot write $results"
  cat "$tmp/readme" >"$readme" || err "cannot write $readme"
  say "recorded in bench/RESULTS.md (### $heading) and README.md (figures: $name)"
}

main "$@" || exit 1
