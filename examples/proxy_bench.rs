//! Proxy relay throughput on loopback: `rosh-ssh --proxy` against `ssh -W`.
//!
//! ```text
//! cargo build --release && cargo run --release --example proxy_bench [MB]
//! ```
//!
//! Moves MB (default 512) each way through each ProxyCommand to a local sink
//! or source, and prints the rate with the connection's setup time (a
//! zero-byte run) taken out. `ssh -W` runs through a throwaway sshd on
//! 127.0.0.1 (skipped when /usr/sbin/sshd is missing). The rosh-ssh binary
//! is the one beside this example (`target/release/rosh-ssh`), or `$ROSH_SSH_BIN`.
//! It prints when and where it ran, then its figures as a Markdown table:
//! `bench/record.sh proxy_bench` files them in bench/RESULTS.md and the
//! README.

// Only part of the shared lab is used here.
#[allow(dead_code)]
#[path = "shared/lab.rs"]
mod lab;
#[path = "shared/run.rs"]
mod run;
use lab::Lab;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHUNK: usize = 1 << 20;

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    println!("{}", run::line("proxy_bench"));
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
    let sink = serve(|mut conn| {
        let mut buf = vec![0u8; CHUNK];
        let mut n: u64 = 0;
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        let _ = conn.write_all(&n.to_be_bytes());
    });
    let source = serve(move |mut conn| {
        let mut want = [0u8; 8];
        if conn.read_exact(&mut want).is_err() {
            return;
        }
        let mut left = u64::from_be_bytes(want) as usize;
        let buf = vec![0x5au8; CHUNK];
        while left > 0 {
            let k = left.min(CHUNK);
            if conn.write_all(&buf[..k]).is_err() {
                return;
            }
            left -= k;
        }
        let _ = conn.shutdown(Shutdown::Write);
    });
    println!("relay of {mb} MB each way on loopback (setup time taken out)");
    let rosh_cmd = |port: u16| {
        let mut c = Command::new(&rosh);
        c.args(["--proxy", "127.0.0.1", &port.to_string()]);
        c
    };
    let mut rows = vec![report("rosh-ssh --proxy", mb, sink, source, &rosh_cmd)];
    match Lab::start("proxy-bench") {
        Ok(lab) => {
            let ssh_cmd = |port: u16| {
                let mut c = Command::new(lab::SSH);
                c.arg("-W")
                    .arg(format!("127.0.0.1:{port}"))
                    .args(lab.args(&lab.config));
                c
            };
            rows.push(report("ssh -W (loopback sshd)", mb, sink, source, &ssh_cmd));
        }
        Err(e) => rows.push(vec![
            "ssh -W".into(),
            format!("skipped: {e}"),
            String::new(),
            String::new(),
        ]),
    }
    println!();
    run::table(
        &[
            &format!("ProxyCommand, {mb} MB each way"),
            "setup",
            "upload",
            "download",
        ],
        &rows,
    );
}

/// Accepts connections forever on 127.0.0.1, one thread each.
fn serve(handle: impl Fn(std::net::TcpStream) + Send + Sync + Copy + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || handle(conn));
        }
    });
    port
}

/// One table row: the command, its setup time, and its rates each way.
fn report(
    name: &str,
    mb: usize,
    sink: u16,
    source: u16,
    cmd: &dyn Fn(u16) -> Command,
) -> Vec<String> {
    let setup = upload(cmd(sink), 0);
    let up = upload(cmd(sink), mb * CHUNK).saturating_sub(setup);
    let down = download(cmd(source), mb * CHUNK).saturating_sub(setup);
    let rate = |d: Duration| format!("{:.0} MB/s", mb as f64 / d.as_secs_f64().max(1e-9));
    vec![
        name.into(),
        format!("{:.0} ms", setup.as_secs_f64() * 1e3),
        rate(up),
        rate(down),
    ]
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start proxy command")
}

/// Sends `bytes` through the proxy to the sink; checks the sink's count.
fn upload(cmd: Command, bytes: usize) -> Duration {
    let start = Instant::now();
    let mut child = spawn(cmd);
    let mut stdin = child.stdin.take().unwrap();
    let buf = vec![0xa5u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let k = left.min(CHUNK);
        stdin.write_all(&buf[..k]).unwrap();
        left -= k;
    }
    drop(stdin);
    let mut count = [0u8; 8];
    child.stdout.take().unwrap().read_exact(&mut count).unwrap();
    let _ = child.wait();
    let took = start.elapsed();
    assert_eq!(u64::from_be_bytes(count), bytes as u64, "sink count");
    took
}

/// Asks the source for `bytes` through the proxy and reads them all.
fn download(cmd: Command, bytes: usize) -> Duration {
    let start = Instant::now();
    let mut child = spawn(cmd);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&(bytes as u64).to_be_bytes()).unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0;
    while got < bytes {
        match out.read(&mut buf).unwrap() {
            0 => break,
            k => got += k,
        }
    }
    let took = start.elapsed();
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got, bytes, "download count");
    took
}
