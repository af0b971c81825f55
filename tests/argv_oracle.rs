//! Differential test of the argv grammar against the real `ssh -G`:
//! generated argument vectors (clusters, attached and separate arguments,
//! options after the destination, `--`, remote commands that look like
//! options) must yield exactly the forwards and destination ssh reads.
mod lab;

use rosh_ssh::argv::{Args, Grammar};
use rosh_ssh::effective::Effective;
use rosh_ssh::forward;
use rosh_ssh::release::Readings;
use std::ffi::OsString;
use std::process::{Command, Stdio};

/// xorshift64*: deterministic, no extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    fn chance(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

/// `P` and `Z` are where releases differ (`-P` a flag up to 9.3, `-P TAG`
/// from 9.4; `-Z` a mode from 10.5, an error before).
const FLAGS: &[&str] = &[
    "v", "4", "N", "n", "T", "C", "A", "x", "a", "k", "q", "P", "Z",
];
const WITH_ARG: &[(&str, &str)] = &[
    ("p", "2222"),
    ("P", "tagged"),
    ("l", "someone"),
    ("o", "Compression=yes"),
    ("o", "ConnectTimeout 7"),
    ("i", "/dev/null"),
    ("E", "/dev/null"),
    ("L", "3131:localhost:3131"),
    ("L", "127.0.0.1:3132:h:22"),
    ("L", "[::1]:3133:[::1]:22"),
    ("L", "*:3134:h:22"),
    ("L", "/tmp/rosh-oracle.sock:h:22"),
    ("L", "3135:/run/remote.sock"),
    ("R", "8082:localhost:8082"),
    ("R", "1080"),
    ("R", "0:h:22"),
    ("D", "1081"),
    ("D", "localhost:1082"),
    ("o", "LocalForward 4141 h:22"),
    ("o", "localforward=4142 h:22"),
    ("o", "RemoteForward 9090"),
    ("o", "DYNAMICFORWARD 4143"),
    ("L", "bad"),
    ("L", "0:h:22"),
];

fn generate(rng: &mut Rng) -> Vec<String> {
    let opts = |rng: &mut Rng, out: &mut Vec<String>| {
        for _ in 0..(rng.next() % 4) {
            let mut cluster = String::from("-");
            for _ in 0..(rng.next() % 3) {
                cluster.push_str(rng.pick(FLAGS));
            }
            if rng.chance(3) && cluster.len() > 1 {
                out.push(cluster);
                continue;
            }
            let (l, a) = rng.pick(WITH_ARG);
            cluster.push_str(l);
            if rng.chance(2) {
                cluster.push_str(a);
                out.push(cluster);
            } else {
                out.push(cluster);
                out.push(a.to_string());
            }
        }
    };
    let mut v = Vec::new();
    opts(rng, &mut v);
    if rng.chance(8) {
        v.push("--".into());
    }
    v.push(
        rng.pick(&["host", "user@host", "ssh://host:2200", "u@h@host"])
            .to_string(),
    );
    opts(rng, &mut v);
    if rng.chance(4) {
        v.push("--".into());
    }
    if rng.chance(2) {
        v.push("ls".into());
        if rng.chance(2) {
            v.push("-L".into());
            v.push("9:h:9".into());
        }
    }
    v
}

fn forward_lines(out: &[u8]) -> Vec<u8> {
    let mut keep = Vec::new();
    for line in out.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"localforward ")
            || line.starts_with(b"remoteforward ")
            || line.starts_with(b"dynamicforward ")
        {
            keep.extend_from_slice(line);
        }
    }
    keep
}

#[test]
fn generated_argv_shapes_agree_with_ssh_g() {
    if !lab::require(lab::ssh()) {
        return;
    }
    let home = lab::TempDir::new("argv-oracle");
    let mut rng = Rng(0x0005_eed0_fa11_u64);
    let (mut accepted, mut rejected) = (0, 0);
    for n in 0..2000 {
        let argv = generate(&mut rng);
        let out = Command::new(lab::ssh())
            .arg("-G")
            .args(["-F", "/dev/null"])
            .args(&argv)
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let mut words: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
        words.extend(argv.iter().map(OsString::from));
        // The release's own grammar (its getopt string in ssh.c) ...
        let (major, minor) = lab::openssh().release;
        let own = Args::parse_as(words.clone(), Grammar::of(major, minor));
        if own.error {
            assert!(
                !out.status.success(),
                "#{n} {argv:?}: we see a usage error, ssh -G accepts"
            );
            rejected += 1;
            continue;
        }
        if !out.status.success() {
            rejected += 1;
            continue; // a bad spec or value: ssh's own error, passed through
        }
        accepted += 1;
        // ... is the reading a run picks from what that ssh -G printed.
        let args = Readings::new(&words).pick_for(&Effective::parse(&out.stdout));
        assert_eq!(
            (&args.opts, args.host, args.command),
            (&own.opts, own.host, own.command),
            "#{n} {argv:?}: picked the {} reading",
            args.grammar.releases
        );
        let ours: Vec<forward::Forward> = rosh_ssh::plan::argv_forwards(&args)
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&forward::dump_ssh_g(&ours)),
            String::from_utf8_lossy(&forward_lines(&out.stdout)),
            "#{n} {argv:?}: forwards differ"
        );
        let Some(dest) = args
            .host
            .map(|h| args.words[h].to_string_lossy().into_owned())
        else {
            panic!("#{n} {argv:?}: no destination read");
        };
        // ssh.c: `ssh://[user@]host[:port]` or `[user@]host` (the last `@`
        // ends the user), and the host name lowercased. A number is made an
        // address (`1081` is `hostname 0.0.4.57`): 9.2 on print the name
        // as given too, as `host`.
        let want_host = match dest.strip_prefix("ssh://") {
            Some(uri) => uri
                .rsplit('@')
                .next()
                .unwrap_or(uri)
                .split(':')
                .next()
                .unwrap_or(uri),
            None => dest.rsplit('@').next().unwrap_or(&dest),
        }
        .to_lowercase();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed
                .lines()
                .any(|l| l == format!("hostname {want_host}") || l == format!("host {want_host}")),
            "#{n} {argv:?}: ssh -G names another destination"
        );
    }
    eprintln!("{accepted} accepted, {rejected} rejected");
    assert!(
        accepted > 100 && rejected > 20,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// Forwards with spaces and `%` tokens in their socket paths, in generated
/// argv shapes: read through `Effective::resolve` with the forwards the
/// words ask for, ssh -G's lines give one forward per forward asked, each
/// found in the words (`prints_as`), and cutting those words leaves ssh -G
/// printing no forward at all.
#[test]
fn paths_with_spaces_and_percent_tokens_are_found_and_cut() {
    if !lab::require(lab::ssh()) {
        return;
    }
    const SPECIAL: &[(&str, &str)] = &[
        ("L", "/tmp/rosh a b/%n.sock:/tmp/t.sock"),
        ("L", "4242:/tmp/rosh %h/t.sock"),
        ("L", "/tmp/rosh-%r@%h:%p.sock:h:22"),
        ("R", "/tmp/rosh-%n.rs:/tmp/%%y"),
        ("R", "/tmp/rosh x/%C:h:22"),
        ("D", "/tmp/rosh a b:./rel.sock"),
        ("D", "/tmp/rosh-%u %i.sock"),
        ("o", "LocalForward \"/tmp/rosh q/%n.sock\" /tmp/t.sock"),
        ("L", "3131:localhost:3131"),
        ("N", ""),
        ("v", ""),
    ];
    let home = lab::TempDir::new("argv-oracle-pct");
    let mut rng = Rng(0x0005_eed0_2513_u64);
    let mut checked = 0;
    let run_g = |words: &[OsString]| {
        Command::new(lab::ssh())
            .arg("-G")
            .args(words)
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for n in 0..150 {
        let mut words: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
        let count = 1 + rng.next() % 4;
        let before_host = rng.next() % (count + 1);
        for i in 0..count {
            if i == before_host {
                words.push("host".into());
            }
            let (l, a) = rng.pick(SPECIAL);
            words.push(format!("-{l}").into());
            if !a.is_empty() {
                words.push(a.into());
            }
        }
        if before_host == count {
            words.push("host".into());
        }
        let out = run_g(&words);
        if !out.status.success() {
            continue;
        }
        let args = Readings::new(&words).pick_for(&Effective::parse(&out.stdout));
        assert!(!args.error, "#{n} {words:?}");
        let asked = rosh_ssh::plan::argv_forwards(&args);
        let known: Vec<forward::Forward> = asked.iter().map(|(_, f)| f.clone()).collect();
        let eff = rosh_ssh::effective::Effective::parse(&out.stdout);
        let got = eff.resolve(&known);
        // ssh keeps one of identical forwards (as written, after expansion).
        let distinct = forward::dedup(&got).len();
        assert_eq!(got.len(), distinct, "#{n} {words:?}: {got:?}");
        let mut cut = Vec::new();
        for f in &got {
            let opts: Vec<usize> = asked
                .iter()
                .filter(|(_, g)| g.prints_as(f))
                .map(|(i, _)| *i)
                .collect();
            assert!(!opts.is_empty(), "#{n} {words:?}: nothing asked for {f:?}");
            let printed = f.ssh_g_lines();
            assert!(
                printed.iter().all(|l| eff.forward_lines.contains(l)),
                "#{n} {words:?}: {f:?} prints {printed:?}"
            );
            cut.extend(opts);
        }
        let rest = run_g(&args.without(&cut));
        assert!(rest.status.success(), "#{n} {words:?}");
        assert_eq!(
            String::from_utf8_lossy(&forward_lines(&rest.stdout)),
            "",
            "#{n} {words:?}: forwards left after the cut"
        );
        checked += 1;
    }
    assert!(checked > 60, "only {checked} accepted by ssh");
}
