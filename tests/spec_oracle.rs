//! Differential test of rosh_ssh::forward against the real `ssh -G`.
//!
//! A few hundred forward specs are generated from a fixed seed, given to
//! `/usr/bin/ssh -G -F /dev/null` as `-L`, `-D`, `-R` and as
//! `-o "LocalForward ..."` lines, and ssh's verdict (exit 0 or 255) and the
//! forward lines it prints are compared with the parser's. ssh wins every
//! disagreement. `%` is never generated: ssh.c %-expands unix-socket paths
//! after parsing, which the forward module leaves alone on purpose.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rosh_ssh::forward::{self, Endpoint, Forward, Kind};

const SSH: &str = "/usr/bin/ssh";
const SEED: u64 = 0x5eed_f0e4_2026_0001;
/// Generated specs per form (-L, -D, -R, and each keyword).
const PER_FORM: usize = 500;

/// xorshift64*: small, deterministic, no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[self.below(items.len())]
    }
}

const HOSTS: &[&[u8]] = &[
    b"h",
    b"localhost",
    b"127.0.0.1",
    b"[::1]",
    b"::1",
    b"[h]",
    b"[]",
    b"",
    b"*",
    b"socks",
    b"[h",
    b"h]",
    b"a\\:b",
    b"a\\/b",
    b"a\\\\b",
    b"h\\",
    b"\\",
    b" h",
    b"a b",
    b"h\xff\xfe",
    b"$h",
    b"${ROSH_HOST}",
    b"${ROSH_COLON}",
    b"${ROSH_EMPTY}",
    b"${NOPE}",
    b"${",
    b"${}",
];

const PORTS: &[&[u8]] = &[
    b"0",
    b"1",
    b"22",
    b"80",
    b"3131",
    b"65535",
    b"65536",
    b"-1",
    b"-0",
    b"+5",
    b" 7",
    b"007",
    b"7 ",
    b"abc",
    b"ssh",
    b"http",
    b"",
    b"99999999999999999999",
    b"0x10",
    b"${ROSH_PORT}",
    b"[80]",
    b"8\\0",
];

const PATHS: &[&[u8]] = &[
    b"/tmp/s",
    b"/run/x.sock",
    b"rel/p",
    b"/",
    b"[/tmp/a:b]",
    b"[/tmp/s]",
    b"a\\/b",
    b"/tmp/a\\:b",
    b"${ROSH_PATH}",
    b"${HOME}/s",
    b"/tmp/\xff",
    b"/a b",
    // 107 and 108 bytes: PATH_MAX_SUN is 108.
    b"/ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp",
    b"/pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp",
];

fn join(fields: &[&[u8]]) -> Vec<u8> {
    fields.join(&b':')
}

/// One spec from templates of every documented form, then small damage.
fn spec(rng: &mut Rng) -> Vec<u8> {
    let (h, p, s) = (HOSTS, PORTS, PATHS);
    let mut out = match rng.below(11) {
        0 | 1 => join(&[rng.pick(p), rng.pick(h), rng.pick(p)]),
        2 => join(&[rng.pick(h), rng.pick(p), rng.pick(h), rng.pick(p)]),
        3 => join(&[rng.pick(p), rng.pick(s)]),
        4 => join(&[rng.pick(h), rng.pick(p), rng.pick(s)]),
        5 => join(&[rng.pick(s), rng.pick(h), rng.pick(p)]),
        6 => join(&[rng.pick(s), rng.pick(s)]),
        7 => rng.pick(p).to_vec(),
        8 => join(&[rng.pick(h), rng.pick(p)]),
        9 => rng.pick(s).to_vec(),
        _ => {
            let n = 1 + rng.below(5);
            let all = [h, p, s];
            let fields: Vec<&[u8]> = (0..n)
                .map(|_| {
                    let set = all[rng.below(3)];
                    rng.pick(set)
                })
                .collect();
            join(&fields)
        }
    };
    if rng.chance(8) {
        out.splice(
            0..0,
            if rng.chance(50) {
                b"  ".to_vec()
            } else {
                b"\t".to_vec()
            },
        );
    }
    if rng.chance(8) {
        let tail = rng.pick(&[b":", b"x", b":x", b"\\", b"]", b"::"]);
        out.extend_from_slice(tail);
    }
    out
}

/// The environment ssh runs with; the parser reads ${VAR} from the same.
fn child_env(home: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut env = BTreeMap::new();
    env.insert(b"HOME".to_vec(), home.as_os_str().as_bytes().to_vec());
    env.insert(b"PATH".to_vec(), b"/usr/bin:/bin".to_vec());
    env.insert(b"ROSH_HOST".to_vec(), b"example.org".to_vec());
    env.insert(b"ROSH_COLON".to_vec(), b"a:b".to_vec());
    env.insert(b"ROSH_EMPTY".to_vec(), Vec::new());
    env.insert(b"ROSH_PORT".to_vec(), b"8080".to_vec());
    env.insert(b"ROSH_PATH".to_vec(), b"/tmp/from-env".to_vec());
    env
}

/// One way of handing a spec to ssh.
#[derive(Clone, Debug)]
enum Case {
    /// `-L spec`, `-D spec`, `-R spec`.
    Arg(u8, Vec<u8>),
    /// `-o "Keyword arg..."`, each arg quoted for argv_split.
    Keyword(Kind, Vec<Vec<u8>>),
}

impl Case {
    fn argv(&self) -> Vec<Vec<u8>> {
        match self {
            Case::Arg(letter, spec) => vec![vec![b'-', *letter], spec.clone()],
            Case::Keyword(kind, args) => {
                let mut line = match kind {
                    Kind::Local => b"LocalForward".to_vec(),
                    Kind::Remote => b"RemoteForward".to_vec(),
                    Kind::Dynamic => b"DynamicForward".to_vec(),
                };
                for arg in args {
                    line.extend_from_slice(b" \"");
                    for &b in arg {
                        // misc.c argv_split: inside quotes only \" and \\
                        // need escaping to come out as themselves.
                        if b == b'"' || b == b'\\' {
                            line.push(b'\\');
                        }
                        line.push(b);
                    }
                    line.push(b'"');
                }
                vec![b"-o".to_vec(), line]
            }
        }
    }

    fn parse(&self, env: forward::Env) -> Option<Forward> {
        match self {
            Case::Arg(letter, spec) => forward::parse_arg_with_env(*letter, spec, env),
            Case::Keyword(kind, args) => {
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                forward::parse_keyword_with_env(*kind, &args, env)
            }
        }
    }

    /// `-L`, `-D`, `-R` or the keyword: the form this case exercises.
    fn form(&self) -> String {
        match self {
            Case::Arg(letter, _) => format!("-{}", *letter as char),
            Case::Keyword(kind, _) => format!("{kind:?}Forward"),
        }
    }

    fn show(&self) -> String {
        self.argv()
            .iter()
            .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn cases() -> Vec<Case> {
    let mut rng = Rng(SEED);
    let mut cases = Vec::new();
    for letter in [b'L', b'D', b'R'] {
        for _ in 0..PER_FORM {
            cases.push(Case::Arg(letter, spec(&mut rng)));
        }
    }
    for kind in [Kind::Local, Kind::Remote, Kind::Dynamic] {
        for _ in 0..PER_FORM / 2 {
            // The config form splits the spec at its first ':' into two
            // words, sometimes one word or a third one, and sometimes
            // pads the joined spec past fwdarg[256].
            let whole = spec(&mut rng);
            let mut args: Vec<Vec<u8>> = match (kind, rng.below(6)) {
                (_, 0) => vec![whole],
                (Kind::Dynamic, _) => vec![whole],
                (_, n) => {
                    let cut = whole.iter().position(|&b| b == b':').unwrap_or(whole.len());
                    let rest = whole.get(cut + 1..).unwrap_or_default().to_vec();
                    let mut a = vec![whole[..cut].to_vec(), rest];
                    if n == 1 {
                        a[1] = [vec![b'h'; 250], b":80".to_vec()].concat();
                    }
                    a
                }
            };
            if rng.chance(8) {
                args.push(b"extra".to_vec());
            }
            if rng.chance(5) {
                args.push(Vec::new());
            }
            cases.push(Case::Keyword(kind, args));
        }
    }
    cases
}

/// Runs `ssh -G -F /dev/null ARGS host`: exit code and forward lines.
fn ssh_g(argv: &[Vec<u8>], env: &BTreeMap<Vec<u8>, Vec<u8>>) -> (i32, Vec<Vec<u8>>) {
    let mut cmd = Command::new(SSH);
    cmd.env_clear()
        .envs(
            env.iter()
                .map(|(k, v)| (OsStr::from_bytes(k), OsStr::from_bytes(v))),
        )
        .args(["-G", "-F", "/dev/null"])
        .args(argv.iter().map(|a| OsStr::from_bytes(a)))
        .arg("host")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run ssh -G");
    let lines = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| {
            l.starts_with(b"localforward ")
                || l.starts_with(b"remoteforward ")
                || l.starts_with(b"dynamicforward ")
        })
        .map(<[u8]>::to_vec)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn lossy(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// A private scratch HOME, removed on drop.
struct TempHome(PathBuf);

impl TempHome {
    fn new() -> TempHome {
        let dir = std::env::temp_dir().join(format!("rosh-spec-oracle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp HOME");
        TempHome(dir)
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Checks every line ssh printed reads back into a forward that prints it.
fn check_round_trip(case: &Case, printed: &[Vec<u8>], bad: &mut Vec<String>) {
    for line in printed {
        match Forward::from_ssh_g(line) {
            Some(f) if f.ssh_g_lines().contains(line) => {}
            other => bad.push(format!(
                "{}: from_ssh_g({:?}) = {other:?}",
                case.show(),
                String::from_utf8_lossy(line)
            )),
        }
    }
}

#[test]
fn parser_agrees_with_ssh_g() {
    if !Path::new(SSH).exists() {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        assert!(
            !ci,
            "{SSH} is missing under CI: the ssh -G oracle cannot run"
        );
        println!("note: {SSH} is missing; skipping the ssh -G differential test");
        return;
    }
    let home = TempHome::new();
    let env = child_env(&home.0);
    let lookup = |name: &[u8]| env.get(name).cloned();

    let cases = cases();
    let mut bad = Vec::new();
    let (mut accepted, mut rejected) = (Vec::new(), 0);
    // Per form: (accepted, rejected) by both.
    let mut forms: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for case in &cases {
        let form = forms.entry(case.form()).or_default();
        let mine = case.parse(&lookup);
        let (code, printed) = ssh_g(&case.argv(), &env);
        match (&mine, code) {
            (Some(f), 0) => {
                if f.ssh_g_lines() != printed {
                    bad.push(format!(
                        "{}: ssh printed {:?}, ssh_g() gives {:?}",
                        case.show(),
                        lossy(&printed),
                        lossy(&f.ssh_g_lines())
                    ));
                }
                check_round_trip(case, &printed, &mut bad);
                // A forward ssh prints on one line reads back as itself,
                // except `-L N:socks:P`, which ssh prints as dynamic.
                let socks_quirk = f.kind == Kind::Local
                    && matches!(&f.connect, Some(Endpoint::Tcp { host: Some(h), .. }) if h == b"socks");
                // A path with a space makes the printed line ambiguous
                // (`remoteforward /a b :[/x]`): any reading that prints it
                // back is as good as ssh's output allows.
                if let [line] = printed.as_slice()
                    && !socks_quirk
                    && !Forward::from_ssh_g(line).is_some_and(|g| g == *f || g.prints_as(f))
                {
                    bad.push(format!(
                        "{}: from_ssh_g({:?}) = {:?}, parsed {f:?}",
                        case.show(),
                        String::from_utf8_lossy(line),
                        Forward::from_ssh_g(line)
                    ));
                }
                accepted.push((case.clone(), f.clone()));
                form.0 += 1;
            }
            (None, 255) => {
                rejected += 1;
                form.1 += 1;
            }
            (mine, code) => bad.push(format!(
                "{}: ssh exit {code} (printed {:?}), parser {:?}",
                case.show(),
                lossy(&printed),
                mine.as_ref()
                    .map(|f| String::from_utf8_lossy(&f.ssh_g()).into_owned())
            )),
        }
    }

    // All accepted specs at once, each twice in a row every so often, so
    // ssh's duplicate skipping and its print order are checked too.
    for chunk in accepted.chunks(40) {
        let mut argv = Vec::new();
        let mut forwards = Vec::new();
        for (n, (case, f)) in chunk.iter().enumerate() {
            let times = if n % 3 == 0 { 2 } else { 1 };
            for _ in 0..times {
                argv.extend(case.argv());
                forwards.push(f.clone());
            }
        }
        let (code, printed) = ssh_g(&argv, &env);
        let mut want: Vec<Vec<u8>> = forward::dump_ssh_g(&forwards)
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        want.pop(); // after the last '\n'
        if code != 0 || printed != want {
            bad.push(format!(
                "batch of {}: ssh exit {code}, printed {:?}, dump_ssh_g gives {:?}",
                forwards.len(),
                lossy(&printed),
                lossy(&want)
            ));
        }
    }

    println!(
        "{} cases: {} accepted, {} rejected by both; {} disagreements",
        cases.len(),
        accepted.len(),
        rejected,
        bad.len()
    );
    println!("per form (accepted, rejected): {forms:?}");
    for b in bad.iter().take(60) {
        println!("DISAGREE {b}");
    }
    assert!(bad.is_empty(), "{} disagreements with ssh -G", bad.len());
    // A generator that only makes one verdict would prove little.
    assert!(accepted.len() * 5 >= cases.len(), "too few accepted specs");
    assert!(rejected * 5 >= cases.len(), "too few rejected specs");
    for (form, &(acc, rej)) in &forms {
        assert!(
            acc >= 5 && rej >= 5,
            "{form}: {acc} accepted, {rej} rejected"
        );
    }
}
