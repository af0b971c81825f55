//! Restore figures (issue 11): the latency from a holder's exit to the
//! first connection through the restored forward, the wrapper's CPU ticks
//! while a local restore is pending on a known holder (target: none), and
//! its peak memory (VmHWM) over that time.
//!
//! `cargo run --release --example restore_bench [-- REPS [SECONDS]]`
//! (REPS restores, default 20; SECONDS of pending restore, default 60).
//! It prints when and where it ran, then its figures as a Markdown table:
//! `bench/record.sh restore_bench` files them in bench/RESULTS.md and the
//! README.

#[path = "shared/lab.rs"]
#[allow(dead_code)]
mod lab;
#[path = "shared/run.rs"]
mod run;
use lab::{Lab, free_port};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("restore_bench: {e}");
        std::process::exit(1);
    }
}

fn rosh_bin() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "rosh-ssh"])
        .current_dir(root)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("cargo build --release failed".into());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    me.parent()
        .and_then(Path::parent)
        .map(|d| d.join("rosh-ssh"))
        .filter(|p| p.is_file())
        .ok_or("no release binary".into())
}

/// python3 holding 127.0.0.1:port until killed.
fn holder(port: u16) -> Result<Child, String> {
    let mut c = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import socket,time,sys; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); print('up', flush=True); time.sleep(600)"
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut b = [0u8; 3];
    c.stdout
        .take()
        .unwrap()
        .read_exact(&mut b)
        .map_err(|e| e.to_string())?;
    Ok(c)
}

fn banner(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut b = [0u8; 8];
    s.read_exact(&mut b).is_ok() && &b == b"SSH-2.0-"
}

/// utime+stime clock ticks and VmHWM (kB) of `pid`.
fn usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks, hwm)
}

fn session(rosh: &Path, lab: &Lab, port: u16) -> Result<Child, String> {
    Command::new(rosh)
        .args(lab.args(&lab.config))
        .args([
            "-L",
            &format!("127.0.0.1:{port}:127.0.0.1:{}", lab.port),
            "sleep 600",
        ])
        .env_remove("ROSH_SSH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn run() -> Result<(), String> {
    let mut a = std::env::args().skip(1);
    let reps: usize = a.next().and_then(|v| v.parse().ok()).unwrap_or(20);
    let secs: u64 = a.next().and_then(|v| v.parse().ok()).unwrap_or(60);
    println!("{}", run::line("restore_bench"));
    let rosh = rosh_bin()?;
    let lab = Lab::start("restore-bench")?;

    let mut lat: Vec<Duration> = Vec::new();
    for _ in 0..reps {
        let port = free_port()?;
        let h = holder(port)?;
        let s = session(&rosh, &lab, port)?;
        std::thread::sleep(Duration::from_millis(700)); // connected
        let t = Instant::now();
        stop(h);
        while !banner(port) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(2));
        }
        lat.push(t.elapsed());
        stop(s);
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut rows = vec![vec![
        format!("restore latency: holder exit to sshd's banner through the forward, {reps} runs"),
        format!(
            "median {:.1} ms, min {:.1} ms, max {:.1} ms",
            ms(lat[lat.len() / 2]),
            ms(lat[0]),
            ms(lat[lat.len() - 1])
        ),
        "(none)".into(),
        String::new(),
    ]];

    let port = free_port()?;
    let h = holder(port)?;
    let s = session(&rosh, &lab, port)?;
    std::thread::sleep(Duration::from_secs(1));
    let (t0, _) = usage(s.id());
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, hwm) = usage(s.id());
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" }.to_string();
    rows.push(vec![
        format!("wrapper CPU over {secs} s with a local restore pending on a known holder"),
        format!("{} ticks", t1 - t0),
        "0".into(),
        verdict(t1 == t0),
    ]);
    let mib = hwm as f64 / 1024.0;
    rows.push(vec![
        "peak memory of the wrapper (VmHWM) over that time".into(),
        format!("{mib:.2} MiB"),
        "<= 4 MiB".into(),
        verdict(mib <= 4.0),
    ]);
    stop(h);
    stop(s);
    println!();
    run::table(&["measure", "result", "target", "verdict"], &rows);
    Ok(())
}
