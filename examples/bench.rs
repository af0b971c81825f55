//! The performance targets, measured side by side in one run: connect
//! overhead against plain ssh on a loopback sshd, startup to exec on the fast
//! path, the wrapper's peak memory while it supervises ssh, matcher
//! throughput on ssh's `-vvv` log lines, and the stripped binary size.
//!
//! `cargo run --release --example bench [-- REPS]` (REPS: connects each way,
//! default 30). It builds `target/release/rosh-ssh` first. Timings are
//! medians of interleaved repetitions (rosh-ssh and the baseline alternate,
//! and which goes first alternates too), so drift on the machine hits both.
//! Run it on a quiet machine: two CPUs shared with a build make noise.

#[path = "shared/synthetic.rs"]
mod synthetic;
use rosh_ssh::matcher::{Matcher, Piece};
use std::ffi::OsString;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const SSH: &str = "/usr/bin/ssh";
const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().map_err(|_| format!("REPS must be a number: {a}")))
        .transpose()?
        .unwrap_or(30);
    let rosh = build_release()?;
    let mut table = Table::default();

    let lab = Lab::start()?;
    println!(
        "sshd lab on 127.0.0.1:{}; {reps} interleaved connects each way per line",
        lab.port
    );

    // 1. No forward anywhere: rosh-ssh reads the config files, finds no
    // forward line and execs ssh.
    let plain = lab.args(&lab.config);
    let p = side_by_side(
        reps,
        || connect(&rosh, &plain),
        || connect(Path::new(SSH), &plain),
    )?;
    table.ratio("connect, no forwards (fast path, exec)", &p, 1.01);

    // 2. A forward in ssh_config: one `ssh -G`, a bind probe, ssh as a child.
    let port = free_port()?;
    let fwd = lab.config_with(
        "fwd",
        &format!("Host lab\n  LocalForward 127.0.0.1:{port} localhost:22\n"),
    )?;
    let fargs = lab.args(&fwd);
    let p = side_by_side(
        reps,
        || connect(&rosh, &fargs),
        || connect(Path::new(SSH), &fargs),
    )?;
    table.ratio("connect, LocalForward in ssh_config", &p, 1.05);

    // 3. The same with ExitOnForwardFailure=yes: ssh's log through the FIFO
    // and the matcher too.
    let eargs: Vec<OsString> = ["-o", "ExitOnForwardFailure=yes"]
        .iter()
        .map(OsString::from)
        .chain(fargs.iter().cloned())
        .collect();
    let p = side_by_side(
        reps,
        || connect(&rosh, &eargs),
        || connect(Path::new(SSH), &eargs),
    )?;
    table.ratio("  ... with ExitOnForwardFailure=yes (log FIFO)", &p, 1.05);

    // 4. Startup to exec: rosh-ssh on the fast path with a stub ssh that
    // exits at once, against the stub run directly.
    let stub = Path::new("/usr/bin/true");
    let n = (reps * 20).max(200);
    let direct: Vec<OsString> = plain.clone();
    let mut via: Vec<OsString> = vec!["--ssh".into(), stub.into()];
    via.extend(plain.iter().cloned());
    let p = side_by_side(n, || spawn_wait(&rosh, &via), || spawn_wait(stub, &direct))?;
    table.added_ms(
        &format!("startup to exec, stub ssh (median of {n})"),
        &p,
        1.0,
    );

    // 5. Peak memory of the rosh-ssh process while it supervises a real
    // session (a forward in the config, ssh's log through the matcher).
    let mut margs: Vec<OsString> = vec!["-vvv".into()];
    margs.extend(eargs.iter().cloned());
    margs.push("sleep 1; echo done".into());
    let (hwm, rss) = peak_memory(&rosh, &margs)?;
    table.value_with(
        "peak memory of rosh-ssh (VmHWM) supervising ssh -vvv",
        format!("highest VmRSS {:.2} MiB", rss as f64 / MIB),
        format!("{:.2} MiB", hwm as f64 / MIB),
        "<= 4 MiB".into(),
        (hwm as f64) <= 4.0 * MIB,
    );

    // 6. Matcher throughput: a real `ssh -vvv` transcript of a lab connect,
    // repeated, and a synthetic -vvv log of a session with busy forwards.
    let vvv = lab.vvv_transcript()?;
    let real = repeat_to(&vvv, 100_000_000);
    let gbs = throughput(&real);
    table.value(
        &format!(
            "matcher, real ssh -vvv log ({} lines) x 100 MB",
            count_lines(&vvv)
        ),
        format!("{gbs:.2} GB/s"),
        ">= 1 GB/s".into(),
        gbs >= 1.0,
    );
    let (synth, _) = synthetic::synthetic_log(100_000_000);
    let gbs = throughput(&synth);
    table.value(
        "matcher, synthetic -vvv log with forwards, 100 MB",
        format!("{gbs:.2} GB/s"),
        ">= 1 GB/s".into(),
        gbs >= 1.0,
    );

    // 7. Size of the stripped release binary.
    let size = fs::metadata(&rosh)
        .map_err(|e| format!("{}: {e}", rosh.display()))?
        .len();
    table.value(
        "release binary size (stripped)",
        format!("{:.3} MiB ({size} B)", size as f64 / MIB),
        "<= 1 MiB".into(),
        size as f64 <= MIB,
    );

    drop(lab);
    table.print();
    Ok(())
}

/// Builds the release binary (a no-op when it is up to date) and returns it.
fn build_release() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "rosh-ssh"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err("cargo build --release failed".into());
    }
    // target/release/examples/bench -> target/release/rosh-ssh
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = me
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("rosh-ssh"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| root.join("target/release/rosh-ssh"));
    if !bin.is_file() {
        return Err(format!("no release binary at {}", bin.display()));
    }
    Ok(bin)
}

/// Runs `a` and `b` `n` times each, alternating which goes first; returns
/// their medians.
fn side_by_side(
    n: usize,
    mut a: impl FnMut() -> Result<Duration, String>,
    mut b: impl FnMut() -> Result<Duration, String>,
) -> Result<Pair, String> {
    // One of each first, untimed: page cache, sshd's first fork.
    a()?;
    b()?;
    let (mut ta, mut tb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        if i % 2 == 0 {
            ta.push(a()?);
            tb.push(b()?);
        } else {
            tb.push(b()?);
            ta.push(a()?);
        }
    }
    Ok(Pair {
        paired_ms: paired_ms(&ta, &tb),
        a: median(ta),
        b: median(tb),
    })
}

/// Medians of the two sides, and the median paired difference.
struct Pair {
    a: Duration,
    b: Duration,
    paired_ms: f64,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2
    }
}

/// The median of the paired differences `a[i] - b[i]` in ms: pairs ran back
/// to back, so drift cancels.
fn paired_ms(a: &[Duration], b: &[Duration]) -> f64 {
    let mut d: Vec<f64> = a.iter().zip(b).map(|(x, y)| ms(*x) - ms(*y)).collect();
    d.sort_by(f64::total_cmp);
    let m = d.len() / 2;
    if d.len() % 2 == 1 {
        d[m]
    } else {
        (d[m - 1] + d[m]) / 2.0
    }
}

/// One `PROGRAM ARGS true` connect, timed from spawn to exit; it must succeed.
fn connect(program: &Path, args: &[OsString]) -> Result<Duration, String> {
    let t = Instant::now();
    let out = Command::new(program)
        .args(args)
        .arg("true")
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let d = t.elapsed();
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!(
            "{} {:?} true: {}; stderr: {}",
            program.display(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(d)
}

fn spawn_wait(program: &Path, args: &[OsString]) -> Result<Duration, String> {
    let t = Instant::now();
    let st = Command::new(program)
        .args(args)
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let d = t.elapsed();
    if !st.success() {
        return Err(format!("{} {args:?}: {st}", program.display()));
    }
    Ok(d)
}

/// Runs rosh-ssh until it exits, sampling its own /proc status (not ssh's):
/// the highest VmHWM and VmRSS seen, in bytes.
fn peak_memory(rosh: &Path, args: &[OsString]) -> Result<(u64, u64), String> {
    let mut child = Command::new(rosh)
        .args(args)
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let status = format!("/proc/{}/status", child.id());
    let (mut hwm, mut rss, mut samples) = (0, 0, 0);
    loop {
        if let Ok(text) = fs::read_to_string(&status) {
            // A zombie has no memory lines left: keep what was read before.
            if let (Some(h), Some(r)) = (kib(&text, "VmHWM:"), kib(&text, "VmRSS:")) {
                hwm = hwm.max(h);
                rss = rss.max(r);
                samples += 1;
            }
        }
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() || out.stdout != b"done\n" || samples < 10 {
        return Err(format!(
            "the supervised session did not run as expected: {} ({samples} samples)",
            out.status
        ));
    }
    Ok((hwm * 1024, rss * 1024))
}

fn kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Bytes per second through the matcher, best of 3, in 64 KiB chunks (one
/// read of a full pipe); checks that every byte was handed on.
fn throughput(log: &[u8]) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let mut m = Matcher::new();
        let mut relayed = 0usize;
        let mut failures = 0usize;
        let mut out = |p: Piece<'_>| match p {
            Piece::Line { bytes, failure, .. } => {
                relayed += bytes.len();
                failures += usize::from(failure.is_some());
            }
            Piece::Raw(b) => relayed += b.len(),
        };
        let t = Instant::now();
        for chunk in log.chunks(65536) {
            m.feed(chunk, &mut out);
        }
        m.finish(&mut out);
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(relayed, log.len(), "every byte relayed");
        std::hint::black_box(failures);
    }
    log.len() as f64 / best / 1e9
}

fn repeat_to(unit: &[u8], bytes: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes + unit.len());
    while v.len() < bytes && !unit.is_empty() {
        v.extend_from_slice(unit);
    }
    v
}

fn count_lines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A loopback sshd like tests/lab (which the bench cannot include: it names
/// the test-only `CARGO_BIN_EXE_rosh-ssh`), cut to what the bench needs.
struct Lab {
    dir: PathBuf,
    port: u16,
    config: PathBuf,
    sshd: Child,
}

impl Lab {
    fn start() -> Result<Lab, String> {
        for tool in [SSHD, SSH] {
            if !Path::new(tool).exists() {
                return Err(format!("{tool} is not installed"));
            }
        }
        let dir = std::env::temp_dir().join(format!("rosh-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for key in ["hostkey", "id"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .stdin(Stdio::null())
                .status()
                .map_err(|e| format!("ssh-keygen: {e}"))?;
            if !st.success() {
                return Err("ssh-keygen failed".into());
            }
        }
        fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).map_err(|e| e.to_string())?;
        let _ = fs::create_dir_all("/run/sshd");
        let user = Command::new("id")
            .arg("-un")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .map_err(|e| e.to_string())?;
        let d = dir.display();
        for _ in 0..5 {
            let port = free_port()?;
            fs::write(
                dir.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\n\
                     AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
                     PidFile none\nPermitRootLogin yes\nAllowTcpForwarding yes\n\
                     PrintMotd no\nPrintLastLog no\nMaxStartups 100:30:200\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            let mut sshd = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(dir.join("sshd_config"))
                .arg("-E")
                .arg(dir.join("sshd.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{SSHD}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = sshd.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !up {
                let _ = sshd.kill();
                let _ = sshd.wait();
                continue;
            }
            let config = dir.join("config");
            fs::write(
                &config,
                format!(
                    "Host lab\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/id\n\
                     \x20 IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n\
                     \x20 BatchMode yes\n  LogLevel ERROR\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            return Ok(Lab {
                dir,
                port,
                config,
                sshd,
            });
        }
        Err("sshd did not come up".into())
    }

    fn args(&self, config: &Path) -> Vec<OsString> {
        vec!["-F".into(), config.into(), "lab".into()]
    }

    /// The lab config with `extra` in front of its `Host lab` block.
    fn config_with(&self, name: &str, extra: &str) -> Result<PathBuf, String> {
        let base = fs::read_to_string(&self.config).map_err(|e| e.to_string())?;
        let p = self.dir.join(name);
        fs::write(&p, format!("{extra}\n{base}")).map_err(|e| e.to_string())?;
        Ok(p)
    }

    /// What `ssh -vvv` logs for one connect that runs `true`.
    fn vvv_transcript(&self) -> Result<Vec<u8>, String> {
        let out = Command::new(SSH)
            .arg("-vvv")
            .args(self.args(&self.config))
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() || count_lines(&out.stderr) < 50 {
            return Err("ssh -vvv did not log a session".into());
        }
        Ok(out.stderr)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The printed results: one row a measure, with its target and verdict.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    fn ratio(&mut self, what: &str, p: &Pair, max: f64) {
        let r = p.a.as_secs_f64() / p.b.as_secs_f64();
        self.rows.push([
            what.into(),
            format!(
                "{:.1} ms vs {:.1} ms (paired {:+.1} ms)",
                ms(p.a),
                ms(p.b),
                p.paired_ms
            ),
            format!("{r:.3}"),
            format!("<= {max:.2}"),
            verdict(r <= max),
        ]);
    }

    fn added_ms(&mut self, what: &str, p: &Pair, max_ms: f64) {
        let added = ms(p.a) - ms(p.b);
        self.rows.push([
            what.into(),
            format!(
                "{:.3} ms vs {:.3} ms (paired {:+.3} ms)",
                ms(p.a),
                ms(p.b),
                p.paired_ms
            ),
            format!("+{added:.3} ms"),
            format!("<= +{max_ms} ms"),
            verdict(added <= max_ms),
        ]);
    }

    fn value(&mut self, what: &str, got: String, target: String, ok: bool) {
        self.value_with(what, String::new(), got, target, ok);
    }

    fn value_with(&mut self, what: &str, note: String, got: String, target: String, ok: bool) {
        self.rows
            .push([what.into(), note, got, target, verdict(ok)]);
    }

    fn print(&self) {
        let head = ["measure", "rosh-ssh vs baseline", "result", "target", ""];
        let mut w = [0; 5];
        for row in std::iter::once(&head.map(String::from)).chain(&self.rows) {
            for (i, c) in row.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |row: &[String; 5]| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<width$}", width = w[i]))
                .collect();
            println!("{}", cells.join("  ").trim_end());
        };
        println!();
        line(&head.map(String::from));
        println!("{}", "-".repeat(w.iter().sum::<usize>() + 8));
        for row in &self.rows {
            line(row);
        }
        let missed = self.rows.iter().filter(|r| r[4] == "MISS").count();
        println!(
            "\n{} of {} targets met",
            self.rows.len() - missed,
            self.rows.len()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(ok: bool) -> String {
    if ok { "PASS" } else { "MISS" }.into()
}
