//! What a benchmark prints for the record: first the `Run:` line (when and
//! where it ran), then its figures as Markdown table rows. `bench/record.sh`
//! files both in bench/RESULTS.md and copies them into the README, where
//! tests/docs.rs checks that every row is a line of a recorded run.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// `Run: NAME, 2026-12-07 13:05 UTC; rosh-ssh 0.2.0 (f700182); Debian
/// GNU/Linux 12 (bookworm), Linux 6.1.0 x86_64, 2 CPUs (Intel(R) Xeon(R)
/// Processor), 23.6 GiB; OpenSSH_9.2p1 Debian-2+deb12u10; rustc 1.95.0;
/// load 0.12 0.30 0.25` (one line). What cannot be read is left out.
pub fn line(name: &str) -> String {
    let mut machine: Vec<String> = Vec::new();
    machine.extend(os_release());
    let kernel = first_line("/proc/sys/kernel/osrelease").unwrap_or_default();
    machine.push(format!("Linux {kernel} {}", std::env::consts::ARCH));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    machine.push(match cpu_model() {
        Some(m) => format!("{cpus} CPUs ({m})"),
        None => format!("{cpus} CPUs"),
    });
    machine.extend(memory());
    let mut parts = vec![
        format!("{name}, {}", now_utc()),
        format!("rosh-ssh {} ({})", env!("CARGO_PKG_VERSION"), commit()),
        machine.join(", "),
    ];
    parts.extend(ssh_version());
    parts.extend(rustc_version());
    if let Some(l) = first_line("/proc/loadavg") {
        // 1, 5 and 15 minute averages: how busy the machine was.
        let avg: Vec<&str> = l.split_whitespace().take(3).collect();
        parts.push(format!("load {}", avg.join(" ")));
    }
    format!("Run: {}", parts.join("; "))
}

/// The current time as `YYYY-MM-DD HH:MM UTC` (civil from days: Howard
/// Hinnant's algorithm, proleptic Gregorian).
fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// What is measured comes from these: the code, its build, the function
/// and the test lab reattach_bench drives.
const MEASURED: &[&str] = &[
    "src",
    "examples",
    "Cargo.toml",
    "Cargo.lock",
    "shell",
    "tests/netlab",
];

/// The checkout's commit, `+` when what is measured differs from it.
fn commit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
            args.extend(MEASURED);
            let dirty = git(&args).is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}+") } else { c }
        }
        _ => "no git".into(),
    }
}

fn first_line(path: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    Some(text.lines().next()?.trim().to_string())
}

fn os_release() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    let v = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(v.trim_matches('"').to_string())
}

fn cpu_model() -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    let l = text.lines().find(|l| l.starts_with("model name"))?;
    Some(l.split_once(':')?.1.trim().to_string())
}

fn memory() -> Option<String> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
}

/// `OpenSSH_9.2p1 Debian-2+deb12u10` (ssh -V, up to the OpenSSL part).
fn ssh_version() -> Option<String> {
    let out = Command::new("ssh")
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Some(text.lines().next()?.split(", ").next()?.trim().to_string())
}

/// `rustc 1.95.0` (the version, without the commit).
fn rustc_version() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    (words.len() == 2).then(|| words.join(" "))
}

/// Prints a Markdown table: the header, its rule, one line per row.
pub fn table(head: &[&str], rows: &[Vec<String>]) {
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        println!("| {} |", cells.join(" | "));
    };
    line(head.iter().map(|h| h.to_string()).collect());
    println!("|{}|", vec!["---"; head.len()].join("|"));
    for row in rows {
        line(row.clone());
    }
}
