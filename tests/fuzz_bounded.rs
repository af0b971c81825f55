//! A bounded, deterministic run of the fuzz properties (fuzz/checks.rs):
//! the argv grammar, forward specs and `ssh -G` lines, config lines and the
//! config rewriter, and the matcher, each on thousands of generated inputs
//! from a fixed-seed PRNG. The long runs are `cargo fuzz run` (fuzz/README.md).
//!
//! `ROSH_FUZZ_CASES=N` scales the number of cases; `ROSH_FUZZ_SEED=S`
//! changes the seed (a failure message names the input, so it can be kept
//! as a unit test next to the code it breaks).

#[path = "../fuzz/checks.rs"]
mod checks;
mod lab;

use checks::{Prng, Source};

#[global_allocator]
static ALLOC: checks::alloc::Counting = checks::alloc::Counting;

fn cases(default: usize) -> usize {
    let scale: f64 = std::env::var("ROSH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|n: f64| n / 20_000.0)
        .unwrap_or(1.0);
    ((default as f64) * scale).max(1.0) as usize
}

fn prng(salt: u64) -> Prng {
    let seed: u64 = std::env::var("ROSH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_2026);
    Prng::new(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[test]
fn argv_grammar_and_without() {
    let mut r = prng(1);
    for _ in 0..cases(20_000) {
        let words = checks::gen_words(&mut r);
        checks::check_argv(words, &mut r);
    }
}

#[test]
fn forward_specs_read_back_from_their_ssh_g_lines() {
    let mut r = prng(2);
    // Fewer cases: a2port asks getservbyname, which reads /etc/services.
    for _ in 0..cases(8_000) {
        let letter = *r.pick(b"LRD");
        let spec = checks::gen_spec(&mut r);
        checks::check_forward_spec(letter, &spec);
        let noise = checks::noise(&mut r, 24);
        checks::check_forward_spec(letter, &noise);
    }
}

#[test]
fn ssh_g_lines_read_as_what_prints_them() {
    let mut r = prng(3);
    for _ in 0..cases(10_000) {
        let line = checks::gen_ssh_g_line(&mut r);
        checks::check_ssh_g_line(&line);
    }
}

#[test]
fn config_lines() {
    let mut r = prng(4);
    let mut respelled = 0;
    for _ in 0..cases(20_000) {
        let mut line = checks::noise(&mut r, 40);
        if r.coin() {
            let mut l = r
                .pick(&[b"LocalForward" as &[u8], b" Host", b"\"a b\"", b"K=", b"#"])
                .to_vec();
            l.append(&mut line);
            line = l;
        }
        respelled += checks::check_config_line(&line) as usize;
    }
    for l in checks::CONFIG_LINES {
        respelled += checks::check_config_line(l.as_bytes()) as usize;
    }
    eprintln!("{respelled} config lines respelled plainly and read again");
    assert!(respelled >= 500, "only {respelled} lines respelled");
}

/// Fewer cases: each one writes a file tree and its copy, and runs `ssh -G`
/// on both. Counts what was really judged, and asserts floors: a generator
/// change that made every tree unreadable to ssh, or no kept forward share a
/// listen side with a dropped one, would otherwise pass in silence.
#[test]
fn config_rewrite_drops_exactly_the_dropped_lines() {
    let ssh = lab::require(lab::ssh()).then(|| std::path::Path::new(lab::ssh()));
    let mut r = prng(5);
    let n = cases(500);
    let (mut rewritten, mut by_ssh, mut shared, mut shared_by_ssh) = (0, 0, 0, 0);
    for _ in 0..n {
        let tree = lab::TempDir::new("fuzz-tree");
        let out = lab::TempDir::new("fuzz-out");
        let c = checks::check_rewrite(&mut r, tree.path(), out.path(), ssh);
        rewritten += c.rewritten as usize;
        by_ssh += c.by_ssh as usize;
        shared += (c.rewritten && c.shared_listen) as usize;
        shared_by_ssh += (c.by_ssh && c.shared_listen) as usize;
    }
    eprintln!(
        "{n} trees: {rewritten} rewritten, {by_ssh} judged by ssh -G, \
         {shared} with a kept forward sharing a dropped one's listen side \
         ({shared_by_ssh} of them by ssh -G)"
    );
    assert!(rewritten * 2 >= n, "only {rewritten} of {n} rewritten");
    assert!(shared * 5 >= n, "only {shared} of {n} share a listen side");
    if ssh.is_some() {
        assert!(by_ssh * 4 >= n, "only {by_ssh} of {n} judged by ssh -G");
        assert!(
            shared_by_ssh * 10 >= n,
            "only {shared_by_ssh} of {n} shared cases judged by ssh -G"
        );
    }
}

#[test]
fn matcher_relays_every_byte_whatever_the_chunks() {
    let mut r = prng(6);
    let n = cases(20_000);
    let mut judged = 0;
    for _ in 0..n {
        let log = checks::gen_log(&mut r);
        let chunks: Vec<usize> = (0..r.below(4)).map(|_| r.below(70)).collect();
        let cap = *r.pick(&[0, 1, 2, 7, 40, 64, 200, rosh_ssh::matcher::DEFAULT_CAP]);
        judged += checks::check_matcher(&log, &chunks, cap);
    }
    eprintln!("{n} logs: {judged} lines held against the reference reading");
    // About one a log here (9967 in 20000 at the default seed).
    assert!(judged * 4 >= n, "only {judged} lines judged in {n} logs");
}

/// Each reference line alone and after a line it could be confused with,
/// in every chunking: the reference reading for all of them.
#[test]
fn matcher_reads_each_reference_line_right() {
    let mut judged = 0;
    for line in checks::LOG_LINES {
        for before in ["", "debug1: x\r\n", "bind [::1]:1: partial"] {
            let input = format!("{before}\n{line}");
            for chunk in [0, 1, 2, 3, 7] {
                let chunks: &[usize] = if chunk == 0 { &[] } else { &[chunk] };
                judged += checks::check_matcher(input.as_bytes(), chunks, 4096);
            }
        }
    }
    // Each reference line at least once per way (the lines before it are
    // sometimes reference lines too).
    assert!(judged >= checks::LOG_LINES.len() * 3 * 5, "{judged}");
}

/// The matcher holds about `cap` bytes whatever the input: megabytes
/// without a newline, and megabytes of lines, in pipe-sized chunks.
#[test]
fn matcher_memory_is_bounded_by_its_cap() {
    let cap = rosh_ssh::matcher::DEFAULT_CAP;
    let no_newline = vec![b'x'; 4 << 20];
    checks::check_matcher(&no_newline, &[65536, 4096, 1], cap);
    let mut lines = Vec::new();
    while lines.len() < 4 << 20 {
        lines.extend_from_slice(b"debug3: receive packet: type 94\r\n");
        lines.extend_from_slice(b"bind [127.0.0.1]:3131: Address already in use\r\n");
    }
    checks::check_matcher(&lines, &[65536, 4093], cap);
}

/// Found by `argv_grammar_and_without`: ssh ends its options when the word
/// before the destination is `--`, even as an option's argument (ssh.c
/// `strcmp(av[optind - 1], "--")`), so in `-E -- lab -v` the `-v` is the
/// remote command. Cutting `-E --` out leaves `lab -v`, where `-v` is an
/// option: the remote command would be gone. `without` keeps the `--`.
#[test]
fn dash_dash_as_an_option_argument_still_ends_the_options_after_a_cut() {
    use rosh_ssh::argv::Args;
    let words: Vec<std::ffi::OsString> = ["-E", "--", "lab", "-v"].iter().map(Into::into).collect();
    let a = Args::parse(words);
    assert_eq!(a.command, 3, "ssh runs `-v` remotely");
    let b = Args::parse(a.without(&[0]));
    assert_eq!(
        b.host.map(|h| &b.words[h..]),
        Some(&["lab".into(), "-v".into()][..]),
    );
    assert_eq!(
        b.command,
        b.words.len() - 1,
        "the remote command is still `-v`"
    );
}
