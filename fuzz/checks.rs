//! The properties the fuzz targets and `tests/fuzz_bounded.rs` check, and the
//! generators that build their inputs from a stream of bytes.
//!
//! Shared through `#[path]`: a fuzz target draws its bytes from libFuzzer's
//! input ([`Bytes`]), the bounded test from a hand-rolled PRNG ([`Prng`]), so
//! the same generators and the same assertions run in both. A violated
//! property panics: libFuzzer records a crash, the test fails. Every check
//! names the input in its message so a failure can be replayed by hand.
#![allow(dead_code)]

use rosh_ssh::argv::{self, Args, ConfigLine};
use rosh_ssh::config;
use rosh_ssh::forward::{self, Endpoint, Forward, Kind};
use rosh_ssh::matcher::{Call, Failure, Matcher, Piece};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Where generators get their choices from.
pub trait Source {
    fn byte(&mut self) -> u8;

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let v = u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]);
        v as usize % n
    }

    fn coin(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of `items`, as bytes (`pick` would infer the wrong `T` here).
    fn word<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[self.below(items.len())]
    }
}

/// A fuzz input read front to back; zeros once it runs out, so every
/// generator ends (lengths come out 0).
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }

    /// What is left, for targets that want raw bytes after the choices.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = &self.data[self.at.min(self.data.len())..];
        self.at = self.data.len();
        r
    }
}

impl Source for Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
}

/// splitmix64: deterministic, no dependency, good enough to spread choices.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Source for Prng {
    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
}

/// Short random bytes, biased to the ones the parsers care about.
pub fn noise(src: &mut impl Source, max: usize) -> Vec<u8> {
    const SPECIAL: &[u8] = b"-:/[]*@=\"'\\ \t\r\n#${}%0123456789LRDoEFv\0\xff";
    let n = src.below(max + 1);
    (0..n)
        .map(|_| {
            if src.coin() {
                *src.pick(SPECIAL)
            } else {
                src.byte()
            }
        })
        .collect()
}

// ---------------------------------------------------------------- argv

/// Words shaped like ssh command lines: options, clusters, forwards, hosts,
/// `--`, `-o` keyword forms, and noise.
const WORDS: &[&[u8]] = &[
    b"-L",
    b"-R",
    b"-D",
    b"-o",
    b"-F",
    b"-E",
    b"-v",
    b"-vvv",
    b"-N",
    b"-f",
    b"-T",
    b"-vL",
    b"-NfL",
    b"-fNL3131:h:22",
    b"-L3131:localhost:22",
    b"-R8082:localhost:8082",
    b"-D1080",
    b"-p22",
    b"-p",
    b"--",
    b"-",
    b"-:",
    b"-Z",
    b"--x",
    b"-G",
    b"-V",
    b"-Q",
    b"-O",
    b"host",
    b"lab",
    b"user@host",
    b"@host",
    b"a@@b",
    b"ssh://u@h:22",
    b"3131:localhost:22",
    b"127.0.0.1:3131:localhost:22",
    b"[::1]:3131:[::1]:22",
    b"/tmp/s:/tmp/t",
    b"8082",
    b"LocalForward=1 h:2",
    b"LocalForward 3131 localhost:22",
    b"RemoteForward=8082 localhost:8082",
    b"DynamicForward 1080",
    b"ClearAllForwardings=yes",
    b"clearallforwardings no",
    b"ExitOnForwardFailure=yes",
    b"-oLocalForward=5 h:6",
    b"-oClearAllForwardings=yes",
    b"/dev/null",
    b"none",
    b"ls",
    b"-l",
    b"",
];

pub fn gen_words(src: &mut impl Source) -> Vec<OsString> {
    let n = src.below(13);
    (0..n)
        .map(|_| {
            let w = match src.below(8) {
                0 => noise(src, 12),
                1 => {
                    // A cluster: '-' and a few letters, maybe with an argument.
                    let mut w = vec![b'-'];
                    for _ in 0..src.below(4) + 1 {
                        w.push(*src.pick(b"1246afgknqstvxyACGKMNPTVXYbceilmopwBDEFIJLOQRSWZ:-"));
                    }
                    if src.coin() {
                        w.extend_from_slice(src.word(WORDS));
                    }
                    w
                }
                _ => src.pick(WORDS).to_vec(),
            };
            OsString::from_vec(w)
        })
        .collect()
}

/// (letter, argument) of every option, the part of [`Args`] that must
/// survive [`Args::without`] unchanged.
fn opt_view(a: &Args) -> Vec<(u8, Option<Vec<u8>>)> {
    a.opts
        .iter()
        .map(|o| (o.letter, o.arg.as_ref().map(|s| s.as_bytes().to_vec())))
        .collect()
}

/// Args::parse never panics; every option is where it says it is; cutting
/// options out with `without` leaves exactly the other options, the same
/// destination and the same remote command when ssh reads the words again.
pub fn check_argv(words: Vec<OsString>, src: &mut impl Source) {
    let a = Args::parse(words.clone());
    assert_eq!(a.words, words);
    assert!(a.command <= words.len(), "command past the end: {words:?}");
    if let Some(h) = a.host {
        assert!(h < a.command, "host after command: {words:?}");
    }
    for o in &a.opts {
        let w = words[o.word].as_bytes();
        assert_eq!(
            w.get(o.at),
            Some(&o.letter),
            "letter not at its place: {words:?}"
        );
        match &o.arg {
            Some(arg) if o.arg_is_next_word => assert_eq!(Some(arg), words.get(o.word + 1)),
            Some(arg) => assert_eq!(arg.as_bytes(), &w[o.at + 1..], "{words:?}"),
            None => assert!(!o.arg_is_next_word),
        }
    }
    assert_eq!(a.without(&[]), words, "without(&[]) changed the words");
    // A few indexes past the end must be ignored, not panic.
    let _ = a.without(&[a.opts.len(), usize::MAX]);
    let _ = a.first_option("clearallforwardings");
    let _ = a.config_options().count();
    let _ = rosh_ssh::plan::argv_forwards(&a);

    if a.error {
        return;
    }
    // What rosh-ssh ever cuts: forwards (-L -R -D -o), -F and -E.
    let droppable: Vec<usize> = (0..a.opts.len())
        .filter(|&n| a.opts[n].arg.is_some() && b"LRDoFE".contains(&a.opts[n].letter))
        .collect();
    let drop: Vec<usize> = droppable.iter().copied().filter(|_| src.coin()).collect();
    let cut = a.without(&drop);
    let b = Args::parse(cut.clone());
    let want: Vec<_> = opt_view(&a)
        .into_iter()
        .enumerate()
        .filter(|(n, _)| !drop.contains(n))
        .map(|(_, o)| o)
        .collect();
    let ctx = || format!("words {words:?} drop {drop:?} -> {cut:?}");
    assert!(!b.error, "the cut words no longer parse: {}", ctx());
    assert_eq!(opt_view(&b), want, "options changed: {}", ctx());
    assert_eq!(
        a.host.map(|h| &words[h]),
        b.host.map(|h| &cut[h]),
        "destination changed: {}",
        ctx()
    );
    assert_eq!(
        &words[a.command..],
        &cut[b.command..],
        "remote command changed: {}",
        ctx()
    );
}

// ---------------------------------------------------------------- forwards

const FIELDS: &[&[u8]] = &[
    b"0",
    b"22",
    b"3131",
    b"65535",
    b"65536",
    b"-1",
    b"08",
    b"0x10",
    b"abc",
    b"localhost",
    b"127.0.0.1",
    b"[::1]",
    b"[127.0.0.1]",
    b"::1",
    b"*",
    b"",
    b"h",
    b"socks",
    b"${HOME}",
    b"${NOPE}",
    b"${",
    b"$X",
    b"/tmp/sock",
    b"/a b",
    b"rel/path",
    b"[",
    b"]",
    b"[h",
];

/// A forward spec: fields from [`FIELDS`] and noise joined by `:` or `/`.
pub fn gen_spec(src: &mut impl Source) -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..src.below(6) {
        if i > 0 {
            s.push(*src.pick(b"::::/ "));
        }
        if src.below(5) == 0 {
            s.extend(noise(src, 8));
        } else {
            s.extend_from_slice(src.word(FIELDS));
        }
    }
    s
}

/// An environment that does not depend on the machine.
pub fn fixed_env(name: &[u8]) -> Option<Vec<u8>> {
    match name {
        b"HOME" => Some(b"/home/u".to_vec()),
        b"PORT" => Some(b"8080".to_vec()),
        b"EMPTY" => Some(Vec::new()),
        b"SPACE" => Some(b"a b".to_vec()),
        _ => None,
    }
}

/// What every parsed forward must satisfy: it prints as `ssh -G` lines,
/// and each line reads back as a forward that prints that line again.
pub fn check_forward(f: &Forward, from: &dyn std::fmt::Debug) {
    let lines = f.ssh_g_lines();
    assert!(!lines.is_empty(), "no ssh -G line for {f:?} from {from:?}");
    assert_eq!(f.ssh_g(), lines.join(&b'\n'));
    for line in &lines {
        if line.contains(&b'\n') {
            // ssh -G prints it as two lines: no reader of its output can
            // get such a forward back (a path or host with a newline).
            continue;
        }
        let back = Forward::from_ssh_g(line).unwrap_or_else(|| {
            panic!(
                "ssh -G line {:?} of {f:?} (from {from:?}) does not read back",
                String::from_utf8_lossy(line)
            )
        });
        assert!(
            back.ssh_g_lines().contains(line),
            "{:?} read back as {back:?}, which prints {:?} (from {from:?})",
            String::from_utf8_lossy(line),
            back.ssh_g_lines()
        );
        // ssh's duplicate test against another value, not against itself:
        // a forward ssh prints as one line is, read back, the same forward
        // to ssh (misc.c forward_equals), and a different one is not.
        // (A host or path with a blank prints ambiguously: ssh -G's output
        // can't tell its fields apart, so those are left out.)
        if lines.len() == 1 && !blank_in(f) {
            assert!(
                back.ssh_equals(f) && f.ssh_equals(&back),
                "{:?} read back as {back:?}, not ssh-equal to {f:?} (from {from:?})",
                String::from_utf8_lossy(line)
            );
            let other = Forward {
                listen: match &f.listen {
                    Endpoint::Tcp { host, port } => Endpoint::Tcp {
                        host: host.clone(),
                        port: port.wrapping_add(1),
                    },
                    Endpoint::Path(p) => Endpoint::Path([p.as_slice(), b"x"].concat()),
                },
                ..f.clone()
            };
            assert!(!other.ssh_equals(f), "{other:?} ssh-equal to {f:?}");
        }
    }
    match f.kind {
        Kind::Remote => {
            assert!(f.local_tcp_listen().is_none() && f.local_path_listen().is_none())
        }
        Kind::Local | Kind::Dynamic => {
            assert!(f.local_tcp_listen().is_some() != f.local_path_listen().is_some())
        }
    }
}

/// Whether a host or path of `f` holds a blank (or a line end).
fn blank_in(f: &Forward) -> bool {
    let b = |e: &Option<&Endpoint>| match e {
        Some(Endpoint::Tcp { host: Some(h), .. }) | Some(Endpoint::Path(h)) => {
            h.iter().any(|c| b" \t\r\n".contains(c))
        }
        _ => false,
    };
    b(&Some(&f.listen)) || b(&f.connect.as_ref())
}

/// parse_arg and parse_keyword: no panic, and what they accept prints and
/// reads back. The keyword form of a command-line spec agrees with it where
/// ssh's own code agrees (one-field -L/-D specs, readconf.c).
pub fn check_forward_spec(letter: u8, spec: &[u8]) {
    if let Some(f) = forward::parse_arg_with_env(letter, spec, &fixed_env) {
        check_forward(&f, &(letter as char, String::from_utf8_lossy(spec)));
    }
    let _ = forward::parse_arg(letter, spec);
    let kind = match letter {
        b'L' => Kind::Local,
        b'R' => Kind::Remote,
        _ => Kind::Dynamic,
    };
    // Keyword form: the spec split at its spaces as argv_split would.
    let words: Vec<&[u8]> = spec.split(|&b| b == b' ').collect();
    if let Some(f) = forward::parse_keyword_with_env(kind, &words, &fixed_env) {
        check_forward(&f, &(kind, String::from_utf8_lossy(spec)));
    }
    let _ = forward::parse_keyword(kind, &words);
}

/// from_ssh_g on any line: no panic, and what it returns prints the line.
pub fn check_ssh_g_line(line: &[u8]) {
    if let Some(f) = Forward::from_ssh_g(line) {
        // readconf.c dump_cfg_forwards never prints a localforward line
        // whose connect host is `socks` (it prints `dynamicforward` alone),
        // so no reading of such a line can print it back.
        let socks = |c: &Option<Endpoint>| matches!(c, Some(Endpoint::Tcp { host: Some(h), .. }) if h == b"socks");
        if f.kind == Kind::Local && socks(&f.connect) {
            return;
        }
        let want = line.strip_suffix(b"\n").unwrap_or(line);
        assert!(
            f.ssh_g_lines().iter().any(|l| l == want),
            "{:?} read as {f:?}, which prints {:?}",
            String::from_utf8_lossy(line),
            f.ssh_g_lines()
        );
    }
}

/// A line shaped like `ssh -G` output: a keyword and one or two printed sides.
pub fn gen_ssh_g_line(src: &mut impl Source) -> Vec<u8> {
    let mut l = src
        .pick(&[
            b"localforward " as &[u8],
            b"remoteforward ",
            b"dynamicforward ",
            b"localforward",
            b"hostname ",
        ])
        .to_vec();
    for i in 0..src.below(3) + 1 {
        if i > 0 {
            l.push(b' ');
        }
        match src.below(4) {
            0 => l.extend(noise(src, 10)),
            1 => l.extend_from_slice(src.word(FIELDS)),
            _ => {
                if src.coin() {
                    l.push(b'[');
                    l.extend_from_slice(src.word(FIELDS));
                    l.extend_from_slice(b"]:");
                }
                l.extend_from_slice(src.word(FIELDS));
            }
        }
    }
    if src.below(4) == 0 {
        l.push(b'\n');
    }
    l
}

// ---------------------------------------------------------------- config

/// ConfigLine::parse and argv_split: no panic; a keyword comes out
/// lowercase and never as a comment.
///
/// And what ssh's reading implies (readconf.c process_config_line): blanks,
/// `\r` and `\f` at the end change nothing; a `#` first makes a comment; a
/// line of plain words (no quote, backslash, `#`, `=` or blank in them)
/// reads as those words, with the keyword in any case and `=` or blanks
/// after it, so what a line parsed to, spelled plainly, parses the same.
/// Returns whether the plain respelling was checked.
pub fn check_config_line(line: &[u8]) -> bool {
    let parsed = ConfigLine::parse(line);
    let show = || String::from_utf8_lossy(line).into_owned();
    if let Some(l) = &parsed {
        assert!(!l.keyword.is_empty(), "{line:?}");
        assert_eq!(l.keyword, l.keyword.to_ascii_lowercase(), "{line:?}");
        assert_ne!(l.keyword[0], b'#', "{line:?}");
    }
    let _ = argv::argv_split(line);
    if !line.contains(&b'\n') {
        let mut padded = line.to_vec();
        padded.extend_from_slice(b" \t\r\x0c");
        assert_eq!(
            ConfigLine::parse(&padded),
            parsed,
            "trailing blanks changed {:?}",
            show()
        );
    }
    let mut comment = b"#".to_vec();
    comment.extend_from_slice(line);
    assert_eq!(ConfigLine::parse(&comment), None, "#{:?}", show());
    let Some(l) = parsed else {
        return false;
    };
    let plain = |w: &[u8]| {
        !w.is_empty()
            && w.iter()
                .all(|&c| c > b' ' && c != 0x7f && !b"\"'\\#=".contains(&c))
    };
    // (No words after the keyword: the rest was a comment; ssh then
    // complains of a missing argument, keyword by keyword.)
    if l.args.is_empty() || !plain(&l.keyword) || !l.args.iter().all(|a| plain(a)) {
        return false;
    }
    let args = l.args.join(&b' ');
    for (kw, sep) in [
        (l.keyword.to_ascii_uppercase(), &b" "[..]),
        (l.keyword.clone(), b"="),
        (l.keyword.clone(), b"\t = "),
    ] {
        let respelled = [kw.as_slice(), sep, &args].concat();
        assert_eq!(
            ConfigLine::parse(&respelled).as_ref(),
            Some(&l),
            "{:?} parsed as {:?} {:?}, but its plain spelling {:?} does not",
            show(),
            String::from_utf8_lossy(&l.keyword),
            l.args,
            String::from_utf8_lossy(&respelled)
        );
    }
    true
}

pub const CONFIG_LINES: &[&str] = &[
    "Host *",
    "Host lab",
    "Host !lab *",
    "Match all",
    "Match host x",
    "Match exec \"false\"",
    "LocalForward 3131 localhost:22",
    "LocalForward [127.0.0.1]:3131 h:22",
    "LocalForward 127.0.0.1:3132 localhost:22",
    "  localforward=3133 localhost:22",
    "LocalForward \"3134\" \"localhost:22\"",
    "LocalForward 3135 localhost:22 # why",
    "LocalForward /tmp/rosh-fuzz-sock localhost:22",
    "LocalForward 3131 localhost:22\r",
    "RemoteForward 8082 localhost:8082",
    "RemoteForward 8083",
    "DynamicForward 1080",
    "DynamicForward 127.0.0.1:1081",
    "DynamicForward=1082",
    "LocalForward 127.0.0.1 3131 localhost 3131",
    "LocalForward",
    "Port 22",
    "LogLevel ERROR",
    "ClearAllForwardings yes",
    "# LocalForward 9 h:9",
    "",
    "\t",
    "IdentityFile ~/.ssh/id",
    "Include rosh-fuzz-nonexistent-*",
    "Include \"unterminated",
];

/// A tree of up to four config files in `dir` (`c0` is the top), with
/// Host/Match blocks, forward lines in many spellings, noise and Includes of
/// each other (loops included).
///
/// Half the trees are clean (lines ssh accepts, so `ssh -G` can judge the
/// copy); every tree may get forwards that share a listen side (same kind
/// family and port, another connect side), so that dropping one and keeping
/// the other tells a whole-forward match from a listen-side one.
pub fn gen_config_tree(src: &mut impl Source, dir: &Path) -> std::io::Result<()> {
    let files = src.below(4) + 1;
    let clean = src.coin();
    for f in 0..files {
        let mut text = Vec::new();
        for _ in 0..src.below(10) {
            let pick = src.below(10);
            if pick >= 7 || (clean && pick != 1) {
                // A forward on one of a few listen sides: 7100..7102, with
                // one of a few connect sides.
                let port = 7100 + src.below(3);
                let kw = src.word(&[
                    b"LocalForward" as &[u8],
                    b"RemoteForward",
                    b"DynamicForward",
                    b"localforward=",
                ]);
                text.extend_from_slice(kw);
                if !kw.ends_with(b"=") {
                    text.push(b' ');
                }
                text.extend_from_slice(port.to_string().as_bytes());
                if kw != b"DynamicForward" {
                    let host = src.word(&[b"h" as &[u8], b"g", b"localhost"]);
                    let to = src.below(3) + 1;
                    text.push(b' ');
                    text.extend_from_slice(host);
                    text.extend_from_slice(format!(":{to}").as_bytes());
                }
                if clean && src.below(4) == 0 {
                    text.extend_from_slice(src.word(&[
                        b"\nHost *" as &[u8],
                        b"\nHost lab",
                        b"\nMatch host x",
                        b"\nHost !lab *",
                    ]));
                }
                text.extend_from_slice(src.word(&[b"\n" as &[u8], b"\n", b"\r\n"]));
                continue;
            }
            match pick {
                0 => text.extend(noise(src, 30)),
                1 => {
                    // Include another file of the tree, absolute or by glob.
                    let target = src.below(files + 1);
                    let name = if src.coin() {
                        format!("c{target}")
                    } else {
                        "c*".into()
                    };
                    text.extend_from_slice(b"Include ");
                    text.extend_from_slice(dir.join(name).as_os_str().as_bytes());
                }
                2 => {
                    text.extend_from_slice(src.word(&[
                        b"LocalForward " as &[u8],
                        b"RemoteForward ",
                        b"DynamicForward ",
                    ]));
                    text.extend(gen_spec(src));
                    if src.coin() {
                        text.push(b' ');
                        text.extend(gen_spec(src));
                    }
                }
                _ => text.extend_from_slice(src.pick(CONFIG_LINES).as_bytes()),
            }
            text.extend_from_slice(src.word(&[b"\n" as &[u8], b"\n", b"\r\n"]));
        }
        if !clean && src.below(4) == 0 {
            text.extend_from_slice(b"LocalForward 4000 h:4"); // no final newline
        }
        std::fs::write(dir.join(format!("c{f}")), text)?;
    }
    Ok(())
}

/// The forwards that the config lines of the files in `dir` spell, by
/// parsing each line: what `rewrite` is asked to drop or keep.
fn forwards_in(dir: &Path) -> Vec<Forward> {
    let mut out: Vec<Forward> = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for p in names {
        let text = std::fs::read(&p).unwrap_or_default();
        for line in text.split(|&b| b == b'\n') {
            let Some(l) = ConfigLine::parse(line) else {
                continue;
            };
            let kind = match l.keyword.as_slice() {
                b"localforward" => Kind::Local,
                b"remoteforward" => Kind::Remote,
                b"dynamicforward" => Kind::Dynamic,
                _ => continue,
            };
            let args: Vec<&[u8]> = l.args.iter().map(|a| a.as_slice()).collect();
            if let Some(f) = forward::parse_keyword(kind, &args)
                && !out.iter().any(|g| g.ssh_equals(&f))
            {
                out.push(f);
            }
        }
    }
    out
}

/// How one generated tree went: what was judged, by what.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RewriteCase {
    /// `rewrite` made a copy (else it refused the tree: a loop, too deep).
    pub rewritten: bool,
    /// The copy was judged by `ssh -G` (ssh ran and accepted the original).
    pub by_ssh: bool,
    /// A kept forward shares its listen side with a dropped one.
    pub shared_listen: bool,
    /// At least one forward was dropped and one kept.
    pub mixed: bool,
}

/// Same kind family (ssh keeps local+dynamic and remote in two lists) and
/// same listen side, not the same forward.
fn shares_listen(a: &Forward, b: &Forward) -> bool {
    (a.kind == Kind::Remote) == (b.kind == Kind::Remote) && a.listen == b.listen && !a.ssh_equals(b)
}

/// `ssh -G -F file host`: its stdout lines, or None when ssh refuses.
fn ssh_g(ssh: &Path, file: &Path, host: &str) -> Option<Vec<Vec<u8>>> {
    let out = std::process::Command::new(ssh)
        .arg("-G")
        .arg("-F")
        .arg(file)
        .arg(host)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

/// rewrite on a generated tree: no panic; when it succeeds, the copy has no
/// line left for a dropped forward and every line of a kept one; and where
/// `ssh` (the real ssh) is given and accepts the original, `ssh -G` of the
/// copy is `ssh -G` of the original less exactly the dropped forwards' lines.
pub fn check_rewrite(
    src: &mut impl Source,
    tree: &Path,
    out: &Path,
    ssh: Option<&Path>,
) -> RewriteCase {
    let mut case = RewriteCase::default();
    if gen_config_tree(src, tree).is_err() {
        return case;
    }
    let top = tree.join("c0");
    let sources = config::sources(Some(top.as_os_str()));
    let all = forwards_in(tree);
    let drop: Vec<Forward> = all.iter().filter(|_| src.coin()).cloned().collect();
    let host = *src.pick(&["lab", "x", "other"]);
    let kept: Vec<&Forward> = all
        .iter()
        .filter(|f| !drop.iter().any(|d| d.ssh_equals(f)))
        .collect();
    case.mixed = !drop.is_empty() && !kept.is_empty();
    case.shared_listen = kept
        .iter()
        .any(|k| drop.iter().any(|d| shares_listen(k, d)));
    let _ = config::mentions_forward(&sources);
    let Ok(copy) = config::rewrite(&sources, &drop, out) else {
        return case;
    };
    case.rewritten = true;
    let copied = config::sources(Some(copy.as_os_str()));
    let dump = || {
        let mut s = format!("dropped {drop:?}, host {host}\n");
        for e in std::fs::read_dir(tree).into_iter().flatten().flatten() {
            let t = std::fs::read(e.path()).unwrap_or_default();
            s += &format!(
                "--- {}\n{}\n",
                e.path().display(),
                String::from_utf8_lossy(&t)
            );
        }
        s
    };
    for f in &all {
        let before = config::origins(&sources, f).len();
        let after = config::origins(&copied, f).len();
        if drop.iter().any(|d| d.ssh_equals(f)) {
            assert_eq!(after, 0, "dropped {f:?} still in the copy of\n{}", dump());
        } else {
            assert_eq!(
                after,
                before,
                "kept {f:?}: {before} lines became {after} in\n{}",
                dump()
            );
        }
    }
    let Some(ssh) = ssh else {
        return case;
    };
    let Some(want) = ssh_g(ssh, &top, host) else {
        return case;
    };
    let got = ssh_g(ssh, &copy, host);
    let gone: Vec<Vec<u8>> = drop.iter().flat_map(|d| d.ssh_g_lines()).collect();
    let expected: Vec<Vec<u8>> = want.into_iter().filter(|l| !gone.contains(l)).collect();
    let show = |v: &[Vec<u8>]| {
        v.iter()
            .filter(|l| l.ends_with(b"forward") || l.windows(7).any(|w| w == b"forward"))
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
    };
    match &got {
        Some(g) => assert!(
            *g == expected,
            "ssh -G of the copy differs: got {:?}, want {:?}, for\n{}",
            show(g),
            show(&expected),
            dump()
        ),
        None => panic!("ssh -G refuses the copy but not the original:\n{}", dump()),
    }
    case.by_ssh = true;
    case
}

// ---------------------------------------------------------------- matcher

/// Lines shaped like ssh's log (the failure messages included), for the
/// matcher generator to splice with noise.
pub const LOG_LINES: &[&str] = &[
    "debug3: receive packet: type 94\r\n",
    "debug1: channel 3: new [direct-tcpip]\r\n",
    "bind [127.0.0.1]:3131: Address already in use\r\n",
    "channel_setup_fwd_listener_tcpip: cannot listen to port: 3131\r\n",
    "Could not request local forwarding.\r\n",
    "Warning: remote port forwarding failed for listen port 8082\r\n",
    "Error: remote port forwarding failed for listen path /tmp/s\r\n",
    "debug1: ssh.c:ssh_confirm_remote_forward():1827 (pid=42): remote forward failure for: listen 8082, connect localhost:22\r\n",
    "debug1: ssh.c:ssh_confirm_remote_forward():1827 (bin=ssh, pid=42): remote forward failure for: listen /p:-2, connect x\r\n",
    "unix_listener: cannot bind to path /tmp/s: Address already in use\r\n",
    "mux_client_forward: forwarding request failed: Port forwarding failed\r\n",
    "Master refused forwarding request: no\r\n",
    "muxclient: master forward request failed\r\n",
    "bind [::1]:99999999999: x\r\n",
    // log.c sshlogv's tag[128]: a long bin= cuts the tag at 127 bytes and
    // ": " follows there; the same shape without bin=/pid= is no tag.
    "channels.c:channel_setup_fwd_listener_tcpip():3820 (bin=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: bind [127.0.0.1]:3131: Address already in use\r\n",
    "channels.c:channel_setup_fwd_listener_tcpip():3820 (xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: bind [127.0.0.1]:3131: Address already in use\r\n",
    "mux_confirm_remote_forward: remote port forwarding failed for listen port 80\r\n",
    "debug1: mux.c:mux_client_forward():1752 (pid=9): Requesting forwarding of remote forward 127.0.0.2:8082 -> localhost:22\r\n",
    // channels.c: two ssh's that bound one port race at listen(2); before
    // 8.9 the loser writes a bare `listen:` line first.
    "listen [127.0.0.1]:3131: Address already in use\r\n",
    "listen: Address already in use\r\n",
    "\n",
    "\r\n",
    "no newline at all",
];

/// The reference reading of each of [`LOG_LINES`], written by hand from
/// ssh's sources (the messages' meaning, as in the matcher's unit table):
/// (failure, forced by LogVerbose). The matcher must give exactly this for
/// such a line whole, whatever surrounds it.
pub fn log_line_verdict(line: &[u8]) -> Option<(Option<Failure>, bool)> {
    let s = |t: &str| t.as_bytes().to_vec();
    let i = LOG_LINES.iter().position(|l| l.as_bytes() == line)?;
    Some(match i {
        0 | 1 => (None, false),
        2 => (
            Some(Failure::LocalBind {
                call: Call::Bind,
                addr: s("127.0.0.1"),
                port: 3131,
                reason: s("Address already in use"),
            }),
            false,
        ),
        3 => (Some(Failure::LocalCannotListen { port: 3131 }), false),
        4 => (Some(Failure::LocalNoneSucceeded), false),
        5 => (
            Some(Failure::RemotePort {
                port: 8082,
                fatal: false,
            }),
            false,
        ),
        6 => (
            Some(Failure::RemotePath {
                path: s("/tmp/s"),
                fatal: true,
            }),
            false,
        ),
        7 => (
            Some(Failure::RemoteRefused {
                listen_host: None,
                port: 8082,
            }),
            true,
        ),
        8 => (
            Some(Failure::RemotePath {
                path: s("/p"),
                fatal: false,
            }),
            true,
        ),
        9 => (Some(Failure::LocalPath { path: s("/tmp/s") }), false),
        10 => (
            Some(Failure::Mux {
                reason: s("Port forwarding failed"),
            }),
            false,
        ),
        11 => (Some(Failure::Mux { reason: s("no") }), false),
        12 => (
            Some(Failure::Mux {
                reason: s("master forward request failed"),
            }),
            false,
        ),
        // Port out of range: not a forward ssh could have had.
        13 => (None, false),
        14 => (
            Some(Failure::LocalBind {
                call: Call::Bind,
                addr: s("127.0.0.1"),
                port: 3131,
                reason: s("Address already in use"),
            }),
            true,
        ),
        15 => (None, false),
        // mux.c, in the master: a mux client's remote forward refused.
        16 => (
            Some(Failure::Mux {
                reason: s("remote port forwarding failed for listen port 80"),
            }),
            false,
        ),
        17 => (
            Some(Failure::MuxRequest {
                listen_host: Some(s("127.0.0.2")),
                port: 8082,
            }),
            true,
        ),
        18 => (
            Some(Failure::LocalBind {
                call: Call::Listen,
                addr: s("127.0.0.1"),
                port: 3131,
                reason: s("Address already in use"),
            }),
            false,
        ),
        19 => (
            Some(Failure::ListenUnnamed {
                reason: s("Address already in use"),
            }),
            false,
        ),
        _ => (None, false),
    })
}

/// Words without which no line names a failure: a line with none of them
/// is judged "no failure" whatever else it holds.
const FAILURE_WORDS: &[&[u8]] = &[
    b"bind [",
    b"listen [",
    b"listen: ",
    b"cannot listen to port",
    b"Could not request local forwarding",
    b"remote port forwarding failed",
    b"remote forward failure",
    b"cannot bind to path",
    b"cannot listen on path",
    b"forwarding request failed",
    b"refused forwarding request",
    b"forward request failed",
    b"Requesting forwarding of remote",
];

pub fn gen_log(src: &mut impl Source) -> Vec<u8> {
    let mut log = Vec::new();
    for _ in 0..src.below(12) {
        match src.below(4) {
            0 => log.extend(noise(src, 40)),
            1 => {
                // A long line, to cross small caps.
                let n = src.below(300);
                log.extend(std::iter::repeat_n(b'x', n));
            }
            _ => {
                let l = src.pick(LOG_LINES).as_bytes();
                if src.below(6) == 0 {
                    // A cut line: the matcher must not be confused by it.
                    log.extend_from_slice(&l[..src.below(l.len() + 1)]);
                } else {
                    log.extend_from_slice(l);
                }
            }
        }
    }
    log
}

/// What a matcher run produced: every line with its verdict, and the raw
/// bytes between lines merged, so runs over different chunkings compare.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Line(Vec<u8>, Option<Failure>, bool),
    Raw(Vec<u8>),
}

/// Runs a matcher of capacity `cap` over `input` cut into `chunks` (lengths,
/// cycled; a 0 feeds an empty chunk). Returns what it saw and the peak of
/// bytes the matcher held allocated on this thread while running (see
/// [`alloc`]; 0 when no counting allocator is installed).
pub fn run_matcher(input: &[u8], chunks: &[usize], cap: usize) -> (Vec<Seen>, usize) {
    let mut seen: Vec<Seen> = Vec::new();
    let mut m = Matcher::with_capacity(cap);
    alloc::start();
    {
        let mut out = |p: Piece<'_>| {
            // What the callback keeps is not the matcher's memory.
            alloc::pause(|| match &p {
                Piece::Line {
                    bytes,
                    failure,
                    forced,
                } => seen.push(Seen::Line(bytes.to_vec(), failure.clone(), *forced)),
                Piece::Raw(b) => match seen.last_mut() {
                    Some(Seen::Raw(r)) => r.extend_from_slice(b),
                    _ => seen.push(Seen::Raw(b.to_vec())),
                },
            });
        };
        let mut at = 0;
        let mut i = 0;
        while at < input.len() {
            let n = if chunks.is_empty() {
                input.len()
            } else {
                chunks[i % chunks.len()]
            };
            i += 1;
            let end = (at + n).min(input.len());
            m.feed(&input[at..end], &mut out);
            at = end;
            if i > input.len() * 4 + 16 {
                // Only zero-length chunks: feed the rest at once.
                m.feed(&input[at..], &mut out);
                at = input.len();
            }
        }
        m.finish(&mut out);
    }
    let peak = alloc::stop();
    (seen, peak)
}

/// The matcher relays every byte once and in order, hands out lines of at
/// most `cap` bytes that end in `\n` (but a last one), judges a line the same
/// whatever the chunking and as the reference reading says, and holds no
/// more than about `cap` bytes. Returns how many lines it held against the
/// reference reading.
pub fn check_matcher(input: &[u8], chunks: &[usize], cap: usize) -> usize {
    let mut judged = 0;
    // Warm up the regexes and their caches: built once per thread, not per line.
    thread_local!(static WARM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !WARM.with(|w| w.replace(true)) {
        let _ = run_matcher(LOG_LINES.concat().as_bytes(), &[], 1 << 16);
    }
    let (seen, peak) = run_matcher(input, chunks, cap);
    let mut relayed = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        match s {
            Seen::Line(b, _, _) => {
                assert!(b.len() <= cap, "line of {} bytes past cap {cap}", b.len());
                if i + 1 < seen.len() {
                    assert!(b.ends_with(b"\n"), "a line that does not end: {b:?}");
                }
                relayed.extend_from_slice(b);
            }
            Seen::Raw(b) => relayed.extend_from_slice(b),
        }
    }
    assert!(
        relayed == input,
        "relayed bytes differ: cap {cap}, chunks {chunks:?}, input {input:?}"
    );
    let (whole, _) = run_matcher(input, &[], cap);
    assert_eq!(
        seen, whole,
        "chunking changed the verdicts: cap {cap}, chunks {chunks:?}"
    );
    // The right answer, not only the same one: each whole line is held
    // against the reference reading.
    for s in &seen {
        let Seen::Line(b, failure, forced) = s else {
            continue;
        };
        if let Some((want, want_forced)) = log_line_verdict(b) {
            assert_eq!(
                (failure, *forced),
                (&want, want_forced),
                "verdict on {:?} (cap {cap})",
                String::from_utf8_lossy(b)
            );
            judged += 1;
        } else if !FAILURE_WORDS
            .iter()
            .any(|w| b.windows(w.len()).any(|x| x == *w))
        {
            assert_eq!(
                failure,
                &None,
                "a failure in a line naming none: {:?}",
                String::from_utf8_lossy(b)
            );
        }
    }
    // The held line never passes the cap; a failure carries at most one line's bytes.
    let bound = 2 * cap + alloc::SLACK;
    assert!(
        peak <= bound,
        "matcher peak {peak} B > {bound} B (cap {cap}, input {} B)",
        input.len()
    );
    judged
}

/// Counts the bytes live on the current thread, so a check can bound what
/// one call holds while other test threads allocate freely. Install with
/// `#[global_allocator] static A: alloc::Counting = alloc::Counting;`.
pub mod alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Allowance for small bookkeeping allocations (a regex cache entry).
    pub const SLACK: usize = 4096;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn count(delta: isize) {
        let _ = ON.try_with(|on| {
            if on.get() {
                let live = LIVE.with(|l| {
                    l.set(l.get() + delta);
                    l.get()
                });
                PEAK.with(|p| p.set(p.get().max(live)));
            }
        });
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            count(l.size() as isize);
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            count(-(l.size() as isize));
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            count(new as isize - l.size() as isize);
            unsafe { System.realloc(p, l, new) }
        }
    }

    pub fn start() {
        LIVE.with(|l| l.set(0));
        PEAK.with(|p| p.set(0));
        ON.with(|o| o.set(true));
    }

    /// Stops counting; returns the peak since [`start`].
    pub fn stop() -> usize {
        ON.with(|o| o.set(false));
        PEAK.with(|p| p.get()).max(0) as usize
    }

    /// Runs `f` without counting what it allocates.
    pub fn pause<R>(f: impl FnOnce() -> R) -> R {
        let was = ON.with(|o| o.replace(false));
        let r = f();
        ON.with(|o| o.set(was));
        r
    }
}
