//! Differential test of config::rewrite against the real `ssh -G`: hundreds of generated config
//! trees (Host/Match blocks, relative, `~` and glob Includes, `Key=value` and quoted forms, CRLF,
//! comments), forwards dropped the way the app picks them (from ssh -G's own lines), and the
//! rewritten config must print exactly what the original printed less the dropped lines.

mod lab;

use lab::ssh_g;
use rosh_ssh::config::{self, Sources};
use rosh_ssh::effective::Effective;
use rosh_ssh::forward::{self, Forward};
use rosh_ssh::tmpdir::PrivateDir;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How many configs are generated; each is asked about every host in [`HOSTS`].
const CASES: u64 = 400;
const HOSTS: [&str; 3] = ["target", "other", "x"];
/// Include files per case, under ~/.ssh/gen/; file k includes only files above k.
const INCS: usize = 4;

/// splitmix64: small, deterministic, good enough to pick shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

/// A listen side: a small set of ports so duplicates and repeats happen.
fn listen(r: &mut Rng) -> String {
    let port = 7000 + r.below(6);
    match r.below(8) {
        0 => format!("127.0.0.1:{port}"),
        1 => format!("[::1]:{port}"),
        2 => format!("localhost:{port}"),
        3 => format!("*:{port}"),
        4 => format!("/tmp/rosh-oracle-{}.sock", r.below(3)),
        _ => port.to_string(),
    }
}

fn connect(r: &mut Rng) -> String {
    let port = 20 + r.below(4);
    match r.below(8) {
        0 => format!("[h{}]:{port}", r.below(2)),
        1 => format!("[::1]:{port}"),
        2 => format!("/tmp/rosh-remote-{}.sock", r.below(2)),
        3 => format!("[::1]:{port}"),
        _ => format!("h{}:{port}", r.below(2)),
    }
}

/// One directive (keyword and arguments) in one of the forms ssh reads alike.
fn directive(r: &mut Rng, keyword: &str, args: &[String]) -> String {
    let kw = match r.below(4) {
        0 => keyword.to_ascii_lowercase(),
        1 => keyword.to_ascii_uppercase(),
        _ => keyword.to_owned(),
    };
    // Single quotes and comments after the arguments are read from 8.7
    // (argv_split). Before, a comment there is an error, and a single quote
    // is part of the word: an error in a forward or a yes/no, a name that
    // matches nothing in an Include (which the rewrite must not follow).
    let new = argv_split();
    let quote = |r: &mut Rng, a: &str| match r.below(6) {
        0 => format!("\"{a}\""),
        1 if new || r.chance(30) => format!("'{a}'"),
        _ => a.to_owned(),
    };
    let mut rest = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            let sep = r.pick(&[" ", "  ", "\t", " \t"]);
            rest.push_str(sep);
        }
        rest.push_str(&quote(r, a));
    }
    let indent = r.pick(&["", "", "  ", "\t", " \t "]);
    let mut line = match r.below(6) {
        0 => format!("{indent}{kw}={rest}"),
        1 => format!("{indent}{kw} = {rest}"),
        2 => format!("{indent}{kw}\t{rest}"),
        3 if !args.is_empty() => format!("{indent}\"{kw}\" {rest}"),
        _ => format!("{indent}{kw} {rest}"),
    };
    if r.chance(10) && new {
        line.push_str(" # a note");
    }
    if r.chance(10) {
        let tail = r.pick(&[" ", "\t", " \t"]);
        line.push_str(tail);
    }
    line
}

fn forward_line(r: &mut Rng) -> String {
    match r.below(6) {
        0 => {
            let l = listen(r);
            directive(r, "DynamicForward", &[l])
        }
        1 => {
            let l = listen(r);
            if r.chance(30) {
                directive(r, "RemoteForward", &[l])
            } else {
                let c = connect(r);
                directive(r, "RemoteForward", &[l, c])
            }
        }
        _ => {
            let (l, c) = (listen(r), connect(r));
            directive(r, "LocalForward", &[l, c])
        }
    }
}

fn block_line(r: &mut Rng) -> String {
    let (kw, arg) = r.pick(&[
        ("Host", "target"),
        ("Host", "other"),
        ("Host", "*"),
        ("Host", "t* !x"),
        ("Host", "!target *"),
        ("Host", "x other"),
        ("Match", "host target"),
        ("Match", "all"),
        ("Match", "!host other"),
        ("Match", "originalhost x"),
        ("Match", "host target,other"),
    ]);
    let args: Vec<String> = arg.split(' ').map(str::to_owned).collect();
    // Match criteria are not quoted the way a Host pattern may be: keep them plain.
    if kw == "Match" {
        return format!("{}Match {arg}", r.pick(&["", "  "]));
    }
    directive(r, kw, &args)
}

fn option_line(r: &mut Rng) -> String {
    let n = r.below(5);
    let (kw, arg) = match r.below(7) {
        0 => ("Port", format!("{}", 2200 + n)),
        1 => ("User", format!("u{n}")),
        2 => ("Compression", "yes".into()),
        3 => ("ServerAliveInterval", format!("{}", 10 + n)),
        4 => ("HostName", format!("h{n}.example")),
        5 => ("ExitOnForwardFailure", "yes".into()),
        _ => ("GatewayPorts", "yes".into()),
    };
    directive(r, kw, &[arg])
}

/// An Include of one or more of the files after `me` (None: the top file).
fn include_line(r: &mut Rng, home: &Path, me: Option<usize>) -> Option<String> {
    let first = me.map_or(0, |k| k + 1);
    if first >= INCS {
        return None;
    }
    let k = first + r.below(INCS - first);
    let arg = match r.below(6) {
        0 => format!("~/.ssh/gen/inc{k}.conf"),
        1 => format!("{}/.ssh/gen/inc{k}.conf", home.display()),
        2 if me.is_none() => "gen/inc*.conf".to_owned(),
        3 => format!("gen/inc{k}.conf gen/missing{k}.conf"),
        4 => format!("gen/inc[{k}-{}].conf", INCS - 1),
        _ => format!("gen/inc{k}.conf"),
    };
    let args: Vec<String> = arg.split(' ').map(str::to_owned).collect();
    Some(directive(r, "Include", &args))
}

/// A file's text: `lines` directives, comments and blanks, with one kind of line end.
fn file_text(r: &mut Rng, home: &Path, me: Option<usize>) -> String {
    let end = if r.chance(25) { "\r\n" } else { "\n" };
    let mut out = String::new();
    let lines = 2 + r.below(12);
    for i in 0..lines {
        let line = match r.below(20) {
            0..=6 => forward_line(r),
            7..=9 => block_line(r),
            10..=12 => option_line(r),
            13..=15 => include_line(r, home, me).unwrap_or_else(|| forward_line(r)),
            16 => format!("# {}", forward_line(r)),
            17 => String::new(),
            18 => "   ".to_owned(),
            _ => format!("#{}", option_line(r)),
        };
        out.push_str(&line);
        if i + 1 < lines || !r.chance(20) {
            out.push_str(if r.chance(5) { "\n" } else { end });
        }
    }
    out
}

fn write(p: &Path, s: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, s).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
}

/// `lines` with the dynamicforward block sorted: which of two equal dynamicforward lines is a
/// shadow of a local forward to a path (dump_cfg_forwards prints both in one block) can't be
/// told from the lines, so that block is compared as a set with repeats.
fn dyn_sorted<'a>(lines: &[&'a String]) -> Vec<&'a String> {
    let mut dynamic: Vec<&String> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("dynamicforward "))
        .collect();
    dynamic.sort();
    let mut dynamic = dynamic.into_iter();
    lines
        .iter()
        .map(|l| {
            if l.starts_with("dynamicforward ") {
                dynamic.next().unwrap()
            } else {
                *l
            }
        })
        .collect()
}

fn is_forward_line(l: &str) -> bool {
    ["localforward ", "remoteforward ", "dynamicforward "]
        .iter()
        .any(|k| l.starts_with(k))
}

/// One generated case; returns a description of the disagreement, if any.
fn one_case(seed: u64, root: &Path, stats: &mut Stats) -> Option<String> {
    let mut r = Rng(seed);
    let home = root.join("home");
    let top = root.join("top.conf");
    let mut tree = String::new();
    let top_text = file_text(&mut r, &home, None);
    write(&top, &top_text);
    let _ = write!(tree, "== {}\n{top_text}\n", top.display());
    for k in 0..INCS {
        if r.chance(85) {
            let p = home.join(format!(".ssh/gen/inc{k}.conf"));
            let t = file_text(&mut r, &home, Some(k));
            write(&p, &t);
            let _ = write!(tree, "== {}\n{t}\n", p.display());
        }
    }
    let mut originals = Vec::new();
    for h in HOSTS {
        originals.push(ssh_g(Some(&top), h, Some(&home)));
    }
    if originals.iter().any(Result::is_err) {
        stats.refused += 1;
    }
    // The forwards to drop, picked from ssh -G's output as the app reads it (effective.rs).
    let mut forwards: Vec<Forward> = Vec::new();
    for out in originals.iter().flatten() {
        let eff = Effective::parse((out.join("\n") + "\n").as_bytes());
        // The app's reading must keep every forward: printed again, it is ssh's output.
        let printed: Vec<&str> = out
            .iter()
            .map(String::as_str)
            .filter(|l| is_forward_line(l))
            .collect();
        let again = String::from_utf8_lossy(&forward::dump_ssh_g(&eff.forwards)).into_owned();
        let mut again: Vec<&str> = again.lines().collect();
        // effective.rs reads forwards as a set: ssh's interleaving of shadows is not kept.
        let mut printed = printed;
        printed.sort();
        again.sort();
        if printed != again && stats.effective.len() < 3 {
            stats.effective.push(format!(
                "effective: ssh -G printed {printed:?}\nread back as {again:?}\n{tree}"
            ));
        }
        if printed != again {
            stats.lossy += 1;
        }
        for f in eff.forwards {
            if !forwards.contains(&f) {
                forwards.push(f);
            }
        }
    }
    let drops: Vec<Forward> = forwards.into_iter().filter(|_| r.chance(50)).collect();
    if drops.is_empty() {
        stats.no_drop += 1;
    }
    let gone: Vec<String> = drops
        .iter()
        .flat_map(|f| f.ssh_g_lines())
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect();
    stats.dropped += gone.len();
    let src = Sources {
        user: Some(top.clone()),
        user_required: true,
        system: None,
        sshdir: PathBuf::from(config::SSHDIR),
        home: Some(home.clone()),
        argv_split: argv_split(),
    };
    let dir = PrivateDir::new_in(root).unwrap();
    let rewritten = match config::rewrite(&src, &drops, dir.path()) {
        Ok(p) => p,
        Err(e) => {
            if originals.iter().all(Result::is_err) {
                stats.both_refused += 1;
                return None;
            }
            return Some(format!("rewrite failed: {e}\n{tree}"));
        }
    };
    for (h, want) in HOSTS.iter().zip(&originals) {
        let got = ssh_g(Some(&rewritten), h, Some(&home));
        match (want, &got) {
            (Err(_), Err(_)) => {}
            (Ok(want), Ok(got)) => {
                // Lines go as many times as dropped forwards print them: ssh prints a
                // dynamicforward line for a real one and for a local forward to a path.
                let mut expected: Vec<&String> = want.iter().collect();
                for g in &gone {
                    if let Some(i) = expected.iter().position(|l| *l == g) {
                        expected.remove(i);
                    }
                }
                let got: Vec<&String> = got.iter().collect();
                if dyn_sorted(&got) != dyn_sorted(&expected) {
                    let extra: Vec<_> = got.iter().filter(|l| !expected.contains(l)).collect();
                    let missing: Vec<_> = expected.iter().filter(|l| !got.contains(l)).collect();
                    return Some(format!(
                        "host {h}: dropped {gone:?}\nunexpected {extra:?}\nmissing {missing:?}\n{tree}"
                    ));
                }
                stats.compared += 1;
            }
            (want, got) => {
                return Some(format!(
                    "host {h}: original {:?} vs rewritten {:?}\n{tree}",
                    want.as_ref().err(),
                    got.as_ref().err()
                ));
            }
        }
    }
    None
}

#[derive(Default, Debug)]
struct Stats {
    compared: usize,
    dropped: usize,
    refused: usize,
    both_refused: usize,
    no_drop: usize,
    /// Outputs effective.rs read back with a forward lost (the first few, in full).
    lossy: usize,
    effective: Vec<String>,
}

/// How the ssh under test splits config arguments, as a run learns it from
/// `ssh -G` (effective::Caps): argv_split from 8.7, strdelim before.
fn argv_split() -> bool {
    static IT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IT.get_or_init(|| {
        let out = ssh_g(Some(Path::new("/dev/null")), "x", None).unwrap();
        let eff = Effective::parse((out.join("\n") + "\n").as_bytes());
        let it = eff.caps.argv_split_config();
        assert_eq!(it, lab::client_at_least(8, 7), "{out:?}");
        it
    })
}

/// Every generated case, run once for the tests below: (disagreements, stats).
fn all_cases() -> Option<&'static (Vec<String>, Stats)> {
    static RESULTS: std::sync::OnceLock<Option<(Vec<String>, Stats)>> = std::sync::OnceLock::new();
    RESULTS
        .get_or_init(|| {
            if !lab::require(lab::ssh()) {
                return None;
            }
            let base = std::env::temp_dir().join(format!("rosh-oracle-{}", std::process::id()));
            let mut stats = Stats::default();
            let mut failures = Vec::new();
            for case in 0..CASES {
                let root = base.join(case.to_string());
                fs::create_dir_all(&root).unwrap();
                if let Some(why) = one_case(0x5eed_0000 + case, &root, &mut stats) {
                    failures.push(format!("case {case}: {why}"));
                }
                let _ = fs::remove_dir_all(&root);
            }
            let _ = fs::remove_dir_all(&base);
            eprintln!(
                "compared {}, dropped {}, refused {}, both refused {}, no drop {}, lossy reads {}",
                stats.compared,
                stats.dropped,
                stats.refused,
                stats.both_refused,
                stats.no_drop,
                stats.lossy
            );
            Some((failures, stats))
        })
        .as_ref()
}

#[test]
fn generated_configs_rewrite_to_what_ssh_g_printed_less_the_drops() {
    let Some((failures, stats)) = all_cases() else {
        return;
    };
    let summary: Vec<String> = failures
        .iter()
        .map(|f| f.lines().take(3).collect::<Vec<_>>().join(" | "))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {CASES} cases disagree:\n{}\nthe first in full:\n{}",
        failures.len(),
        summary.join("\n"),
        failures.first().unwrap()
    );
    // The generator must really exercise the rewrite.
    assert!(stats.compared > CASES as usize, "{stats:?}");
    assert!(stats.dropped > CASES as usize / 2, "{stats:?}");
}

/// effective.rs reads ssh -G's forward lines back without losing one. Regression: a real
/// `DynamicForward P` next to `LocalForward P /path` prints `dynamicforward P` twice, and the
/// shadow filter removed both, so the app never saw (nor could drop) the real one.
#[test]
fn generated_ssh_g_outputs_read_back_whole() {
    let Some((_, stats)) = all_cases() else {
        return;
    };
    assert!(
        stats.lossy == 0,
        "{} ssh -G outputs read with a forward lost; the first:\n{}",
        stats.lossy,
        stats.effective.first().map_or("", String::as_str)
    );
}

/// Regression: `LocalForward 7002 socks:21` is printed by ssh -G as `dynamicforward 7002`
/// (readconf.c dump_cfg_forwards tells SOCKS forwards by connect_host "socks"), so the app reads
/// a Dynamic forward; the rewrite must still drop the config line that printed it. (The
/// generator above leaves the host name `socks` out so that this one case is reported once.)
#[test]
fn a_forward_to_a_host_named_socks_is_dropped_as_ssh_prints_it() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let root = std::env::temp_dir().join(format!("rosh-oracle-socks-{}", std::process::id()));
    let home = root.join("home");
    let top = root.join("top.conf");
    write(&top, "LocalForward 7002 socks:21\nLocalForward 7003 h:21\n");
    let want = ssh_g(Some(&top), "h", Some(&home)).unwrap();
    assert!(want.iter().any(|l| l == "dynamicforward 7002"), "{want:?}");
    let eff = Effective::parse((want.join("\n") + "\n").as_bytes());
    let drops: Vec<Forward> = eff
        .forwards
        .into_iter()
        .filter(|f| f.ssh_g() == b"dynamicforward 7002")
        .collect();
    assert_eq!(drops.len(), 1);
    let src = Sources {
        user: Some(top.clone()),
        user_required: true,
        system: None,
        sshdir: PathBuf::from(config::SSHDIR),
        home: Some(home.clone()),
        argv_split: argv_split(),
    };
    let dir = PrivateDir::new_in(&root).unwrap();
    let got = config::rewrite(&src, &drops, dir.path())
        .map(|p| ssh_g(Some(&p), "h", Some(&home)).unwrap())
        .unwrap();
    let expected: Vec<&String> = want
        .iter()
        .filter(|l| *l != "dynamicforward 7002")
        .collect();
    let got: Vec<&String> = got.iter().collect();
    drop(dir);
    let _ = fs::remove_dir_all(&root);
    let extra: Vec<_> = got.iter().filter(|l| !expected.contains(l)).collect();
    let missing: Vec<_> = expected.iter().filter(|l| !got.contains(l)).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "unexpected {extra:?}, missing {missing:?}"
    );
}
