//! The `rosh` loop across a link that really dies: time to notice the loss
//! and time to be back in the session once the link returns, for outages of
//! 10, 45, 90 and 300 s (or the seconds given).
//!
//! ```text
//! cargo build --release && sudo cargo run --release --example reattach_bench [SECONDS...]
//! ```
//!
//! Needs root, iproute2, nftables, sshd and tmux (tests/netlab: two network
//! namespaces, a veth pair, sshd in one, the loop in a real tmux terminal in
//! the other, every packet of the link dropped by nftables during the
//! outage). rosh runs with its defaults (`-I 1`, ServerAliveInterval 5,
//! ServerAliveCountMax 1). "noticed" is from the blackhole going up to the
//! loop's "connection ... lost" line; "back" from the blackhole coming down
//! to a new tmux client attached on the server (the old connection's packets
//! keep vanishing, as for a laptop back on another address). The rosh-ssh
//! binary is the one beside this example (`target/release/rosh-ssh`), or
//! `$ROSH_SSH_BIN`. It prints when and where it ran, then its figures as a
//! Markdown table: `bench/record.sh reattach_bench` files them in
//! bench/RESULTS.md and the README.

#[path = "../tests/netlab/mod.rs"]
mod netlab;
#[path = "shared/run.rs"]
mod run;

use netlab::{Net, Term, Tmux, unique, wait_for};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let outages: Vec<u64> = {
        let given: Vec<u64> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if given.is_empty() {
            vec![10, 45, 90, 300]
        } else {
            given
        }
    };
    println!("{}", run::line("reattach_bench"));
    if let Some(why) = netlab::unavailable() {
        eprintln!("reattach_bench: {why}");
        std::process::exit(1);
    }
    let rosh = std::env::var_os("ROSH_SSH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("rosh-ssh")
        });
    if !rosh.exists() {
        eprintln!(
            "{} missing: run `cargo build --release` first",
            rosh.display()
        );
        std::process::exit(1);
    }
    let dir = std::env::temp_dir().join(unique("reattach-bench"));
    fs::create_dir(&dir).expect("temp dir");
    let rows = run(&dir, &rosh, &outages);
    let _ = fs::remove_dir_all(&dir);
    match rows {
        Ok(rows) => {
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|(secs, noticed, back)| {
                    vec![
                        format!("{secs} s"),
                        format!("{:.1} s", noticed.as_secs_f64()),
                        format!("{:.2} s", back.as_secs_f64()),
                    ]
                })
                .collect();
            println!();
            run::table(
                &["outage", "noticed after", "back after the link returned"],
                &rows,
            );
        }
        Err(e) => {
            eprintln!("reattach_bench: {e}");
            std::process::exit(1);
        }
    }
}

type Row = (u64, Duration, Duration);

fn run(dir: &Path, rosh: &Path, outages: &[u64]) -> Result<Vec<Row>, String> {
    let home = dir.join("remote-home");
    let tmpdir = dir.join("tmux");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    fs::create_dir_all(&tmpdir).map_err(|e| e.to_string())?;
    let mut net = Net::start(
        dir,
        &format!("HOME={} TMUX_TMPDIR={}", home.display(), tmpdir.display()),
    )?;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(rosh, bin.join("rosh-ssh")).map_err(|e| e.to_string())?;
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .map_err(|e| e.to_string())?;
    let sock = unique("remote");
    let remote = Tmux {
        args: vec!["-L".into(), sock.clone().into()],
        tmpdir,
    };
    let mut argv = net.in_client();
    argv.extend(["sh".to_string(), "-i".to_string()]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let env = [("PATH", path), ("PS1", "$ ".into()), ("HOME", dir.into())];
    let term = Term::start(dir, "local.sock", &env, &argv);
    let log = dir.join("rosh.log");
    let shell_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("shell/rosh.sh");
    term.line(&format!(
        ". '{}'; rosh -L {sock} -F '{}' lab bench 2>>'{}'",
        shell_sh.display(),
        net.config().display(),
        log.display()
    ));
    let lost = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("connection to lab lost")
            .count()
    };
    let mut known: Vec<i32> = Vec::new();
    let attached = |known: &[i32], secs| {
        wait_for(secs, || {
            remote.clients().into_iter().find(|c| !known.contains(c))
        })
    };
    known.push(attached(&known, 20).ok_or("the first attach failed")?);
    let mut rows = Vec::new();
    for &secs in outages {
        // Idle for a moment, as a real session between keystrokes.
        std::thread::sleep(Duration::from_secs(3));
        let before = lost();
        let dead = net.client_ports();
        let start = Instant::now();
        net.block();
        // Watch for the loss while the outage lasts, and after if need be.
        let mut noticed = None;
        let watch = |noticed: &mut Option<Duration>| {
            if noticed.is_none() && lost() > before {
                *noticed = Some(start.elapsed());
            }
        };
        while start.elapsed() < Duration::from_secs(secs) {
            watch(&mut noticed);
            std::thread::sleep(Duration::from_millis(20));
        }
        // The old connection stays dead, as for a laptop back on another
        // address: the server keeps its client until rosh detaches it.
        for &port in &dead {
            net.bury(port);
        }
        net.unblock();
        let back_at = Instant::now();
        let client = wait_for(600, || {
            watch(&mut noticed);
            remote.clients().into_iter().find(|c| !known.contains(c))
        })
        .ok_or("no reattach within 600 s")?;
        let back = back_at.elapsed();
        known.push(client);
        let noticed = noticed.ok_or(format!("the {secs} s outage was not noticed"))?;
        eprintln!(
            "outage {secs} s: noticed after {:.1} s, back {:.2} s after the link returned",
            noticed.as_secs_f64(),
            back.as_secs_f64()
        );
        rows.push((secs, noticed, back));
    }
    drop(term);
    drop(remote);
    drop(net);
    Ok(rows)
}
