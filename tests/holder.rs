//! holder: a listener held by a process the test starts is named with that pid.
//!
//! The holding processes are this very test binary, re-executed with
//! `ROSH_HOLDER_CHILD` set (see `child_holds`), so no nc or python is needed.

mod lab;

use rosh_ssh::holder::{self, Holder, Unknown};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::process::{Child, Command, Stdio};

const CHILD_ENV: &str = "ROSH_HOLDER_CHILD";
const LOOKUP_ENV: &str = "ROSH_HOLDER_LOOKUP";

/// Not a test when run by the harness: the body of the holding child.
/// Binds what `ROSH_HOLDER_CHILD` says, prints `BOUND addr`, holds until stdin closes.
#[test]
fn child_holds() {
    let Ok(what) = std::env::var(CHILD_ENV) else {
        return;
    };
    let _keep: Box<dyn std::any::Any> = if let Some(path) = what.strip_prefix("unix:") {
        let l = UnixListener::bind(path).unwrap();
        println!("BOUND {path}");
        Box::new(l)
    } else {
        let l = TcpListener::bind(what.as_str()).unwrap();
        println!("BOUND {}", l.local_addr().unwrap());
        Box::new(l)
    };
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Not a test when run by the harness: looks up what `ROSH_HOLDER_LOOKUP`
/// names (run under another uid) and prints `PHRASE text`.
#[test]
fn child_looks_up() {
    let Ok(what) = std::env::var(LOOKUP_ENV) else {
        return;
    };
    let phrase = match what.strip_prefix("unix:") {
        Some(path) => show(holder::unix_listener(path.as_bytes())),
        None => show(holder::tcp_listener(what.parse().unwrap())),
    };
    println!("PHRASE {phrase}");
}

fn show(r: Result<Holder, Unknown>) -> String {
    match r {
        Ok(h) => h.to_string(),
        Err(u) => u.to_string(),
    }
}

fn me() -> std::path::PathBuf {
    std::env::current_exe().unwrap()
}

/// Starts a child holding `what`; returns it and the bound address text.
fn spawn_holder(what: &str) -> (Child, String) {
    let mut child = Command::new(me())
        .args(["--exact", "child_holds", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, what)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut out = BufReader::new(out);
    for line in out.by_ref().lines() {
        let line = line.unwrap();
        // The harness may print `test child_holds ... ` before it on the same line.
        if let Some((_, addr)) = line.split_once("BOUND ") {
            let addr = addr.to_string();
            // Kept open so the child's harness can print its result.
            child.stdout = Some(out.into_inner());
            return (child, addr);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("holder child printed no address");
}

fn end(mut child: Child) {
    drop(child.stdin.take());
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut Vec::new());
    }
    let _ = child.wait();
}

/// ::1 bindable here; under CI its absence fails the test.
fn v6_available() -> bool {
    lab::ipv6_loopback()
}

#[test]
fn names_a_child_holding_v4() {
    let (child, addr) = spawn_holder("127.0.0.1:0");
    let addr: SocketAddr = addr.parse().unwrap();
    let h = holder::tcp_listener(addr).unwrap();
    assert_eq!(h.pid, child.id());
    assert!(
        h.cmdline.starts_with(me().as_os_str().as_encoded_bytes()),
        "{h}"
    );
    assert!(
        h.to_string()
            .starts_with(&format!("held by pid {} (", child.id()))
    );
    let pid = child.id();
    end(child);
    // Gone with its holder (another process may have taken the port since).
    assert_ne!(holder::tcp_listener(addr).map(|h| h.pid), Ok(pid));
}

#[test]
fn names_a_child_holding_v6() {
    if !v6_available() {
        return;
    }
    let (child, addr) = spawn_holder("[::1]:0");
    let addr: SocketAddr = addr.parse().unwrap();
    assert_eq!(holder::tcp_listener(addr).map(|h| h.pid), Ok(child.id()));
    // ::1 does not cover 127.0.0.1 on the same port.
    let v4 = SocketAddr::new("127.0.0.1".parse().unwrap(), addr.port());
    assert_ne!(holder::tcp_listener(v4).map(|h| h.pid), Ok(child.id()));
    end(child);
}

#[test]
fn wildcard_listener_covers_loopback() {
    let (child, addr) = spawn_holder("0.0.0.0:0");
    let port = addr.parse::<SocketAddr>().unwrap().port();
    let asked = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    assert_eq!(holder::tcp_listener(asked).map(|h| h.pid), Ok(child.id()));
    // The v4-mapped spelling of the same address.
    let mapped = SocketAddr::new("::ffff:127.0.0.1".parse().unwrap(), port);
    assert_eq!(holder::tcp_listener(mapped).map(|h| h.pid), Ok(child.id()));
    end(child);
}

#[test]
fn v6_wildcard_covers_v4() {
    if !v6_available() {
        return;
    }
    let (child, addr) = spawn_holder("[::]:0");
    let port = addr.parse::<SocketAddr>().unwrap().port();
    let asked = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    assert_eq!(holder::tcp_listener(asked).map(|h| h.pid), Ok(child.id()));
    end(child);
}

#[test]
fn names_our_own_process() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let h = holder::tcp_listener(l.local_addr().unwrap()).unwrap();
    assert_eq!(h.pid, std::process::id());
}

#[test]
fn a_bound_but_not_listening_port_has_no_holder() {
    // Bound and never listening: in /proc/net/tcp, but not in LISTEN state,
    // and no other process can take the port meanwhile.
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket,
    };
    let sock = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(sock.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    let port = getsockname::<SockaddrIn>(sock.as_raw_fd()).unwrap().port();
    let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    assert_eq!(holder::tcp_listener(addr), Err(Unknown::NotFound));
    assert_eq!(Unknown::NotFound.to_string(), "holder not found");
}

/// A fresh directory, removed on drop (a failed assertion included).
fn temp_dir(tag: &str) -> lab::TempDir {
    lab::TempDir::new(&format!("holder-{tag}"))
}

#[test]
fn names_a_child_holding_a_unix_socket() {
    let dir = temp_dir("unix");
    let path = dir.path().join("sock with space");
    let (child, bound) = spawn_holder(&format!("unix:{}", path.display()));
    assert_eq!(bound, path.display().to_string());
    let h = holder::unix_listener(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(h.pid, child.id());
    end(child);
    // The socket file stays behind, stale: no listener holds it.
    assert_eq!(
        holder::unix_listener(path.as_os_str().as_encoded_bytes()),
        Err(Unknown::NotFound)
    );
}

/// Runs the lookup in a child as uid/gid 65534 (nobody), which cannot read
/// the fds of our (root's) processes. None (a printed skip) if that cannot
/// be arranged here: not root, or no setpriv; under CI either one fails (CI
/// runs as root and .ci/run installs util-linux's setpriv). Once it can be
/// arranged, a child that fails to say its phrase fails the test.
fn lookup_as_nobody(what: &str) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        lab::skip_or_fail("looking up as another user needs root");
        return None;
    }
    let spawned = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(me())
        .args([
            "--exact",
            "child_looks_up",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOOKUP_ENV, what)
        .stderr(Stdio::inherit())
        .output();
    let out = match spawned {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            lab::skip_or_fail("no setpriv (util-linux)");
            return None;
        }
        Err(e) => panic!("setpriv: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let phrase = text
        .lines()
        .find_map(|l| l.split_once("PHRASE ").map(|(_, p)| p.to_string()));
    assert!(
        phrase.is_some(),
        "the lookup as nobody said nothing ({}): {text}",
        out.status
    );
    phrase
}

#[test]
fn another_users_holder_degrades_politely() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let Some(phrase) = lookup_as_nobody(&addr.to_string()) else {
        return;
    };
    assert_eq!(phrase, "held by a process of uid 0 (not visible)");
}

#[test]
fn another_users_unix_holder_degrades_politely() {
    let dir = temp_dir("unix-other");
    let path = dir.path().join("s");
    let _l = UnixListener::bind(&path).unwrap();
    let Some(phrase) = lookup_as_nobody(&format!("unix:{}", path.display())) else {
        return;
    };
    assert_eq!(phrase, "held by a process of uid 0 (not visible)");
}

/// `rosh-ssh --dry-run -F /dev/null -L SPEC h`: the line about the forward.
fn dry_run_line(spec: &str) -> String {
    let out = Command::new(lab::rosh_ssh())
        .args(["--dry-run", "-F", "/dev/null", "-L", spec, "h"])
        .env_remove("ROSH_SSH")
        .env_remove("ROSH_VERBOSE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    stdout.lines().nth(1).unwrap_or_default().to_string()
}

/// Issue 21, defect 8: with both 127.0.0.1 and [::1] held, the line named
/// only [::1]. Every busy address is named, and a holder of both only once.
#[test]
fn both_loopback_addresses_held_by_one_process_are_named_with_it_once() {
    if !v6_available() {
        return;
    }
    let (child, v6) = spawn_holder("[::1]:0");
    let port = v6.parse::<SocketAddr>().unwrap().port();
    // The same child cannot bind twice: this one holds v4 by itself, so
    // here both are held by this test process, ...
    let Ok(_v4) = TcpListener::bind(("127.0.0.1", port)) else {
        end(child);
        return;
    };
    let line = dry_run_line(&format!("{port}:h:22"));
    let pid = child.id();
    let me = std::process::id();
    // ... two holders: each named with the address it holds.
    let want =
        format!("drop -L {port}:h:22 # in use: 127.0.0.1:{port}, [::1]:{port}, held by pid {me} (");
    assert!(line.starts_with(&want), "{line}\nwant: {want}");
    assert!(
        line.contains(&format!(") on 127.0.0.1:{port}, held by pid {pid} (")),
        "{line}"
    );
    assert!(line.ends_with(&format!(") on [::1]:{port}")), "{line}");
    end(child);

    // One process holding both: named once, after both addresses.
    let v6 = TcpListener::bind(("::1", 0)).unwrap();
    let port = v6.local_addr().unwrap().port();
    let Ok(_v4) = TcpListener::bind(("127.0.0.1", port)) else {
        return;
    };
    let line = dry_run_line(&format!("{port}:h:22"));
    let want =
        format!("drop -L {port}:h:22 # in use: 127.0.0.1:{port}, [::1]:{port}, held by pid {me} (");
    assert!(line.starts_with(&want), "{line}\nwant: {want}");
    assert_eq!(line.matches("held by").count(), 1, "{line}");
}

/// Issue 21, defect 8: a holder that is another rosh-ssh's ssh was named by
/// rosh-ssh's plumbing (`/usr/bin/ssh -o ExitOnForwardFailure=no -E
/// /tmp/rosh-ssh.../log ...`); it is named by the words its user typed.
#[test]
fn another_rosh_ssh_s_ssh_is_named_by_its_users_words() {
    let Some(lab) = lab::Lab::start() else { return };
    let port = lab::free_port();
    let spec = format!("{port}:localhost:22");
    let cfg = lab.config();
    let cfg = cfg.to_str().unwrap();
    let mut first = Command::new(lab::rosh_ssh())
        .args(["-F", cfg, "lab", "-L", &spec, "echo ready; cat"])
        .env_remove("ROSH_SSH")
        .env_remove("ROSH_VERBOSE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = lab::first_line(&mut first);
    let line = if ready == "ready\n" {
        dry_run_line_with(&["-F", cfg, "-L", &spec, "lab"])
    } else {
        String::new()
    };
    drop(first.stdin.take());
    let out = first.wait_with_output().unwrap();
    assert_eq!(ready, "ready\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        line.starts_with(&format!("drop -L {spec} # in use: 127.0.0.1:{port}")),
        "{line}"
    );
    // Cut at 60 characters: the start is what the user typed.
    let at = line
        .find("held by pid ")
        .unwrap_or_else(|| panic!("{line}"));
    let shown = &line[at..];
    let words = shown.split_once(" (").map(|(_, w)| w).unwrap_or_default();
    assert!(
        words.starts_with(&format!("{} -F {}", lab::ssh(), &cfg[..cfg.len().min(20)])),
        "{line}"
    );
    for plumbing in ["ExitOnForwardFailure", "-E ", "LogVerbose", "rosh-ssh."] {
        assert!(!words.contains(plumbing), "{plumbing}: {line}");
    }
}

/// `rosh-ssh --dry-run WORDS`: the line about the (one) forward.
fn dry_run_line_with(words: &[&str]) -> String {
    let out = Command::new(lab::rosh_ssh())
        .arg("--dry-run")
        .args(words)
        .env_remove("ROSH_SSH")
        .env_remove("ROSH_VERBOSE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    stdout.lines().nth(1).unwrap_or_default().to_string()
}

#[test]
fn the_process_asked_about_first_is_named_when_it_shares_the_socket() {
    use std::os::unix::process::CommandExt;
    // This process and a child of it hold one listener (the child keeps
    // the fd across its exec): the lowest pid, this one, is the holder,
    // unless the caller asks about the child first.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let fd = l.as_raw_fd();
    let mut cmd = Command::new("sleep");
    cmd.arg("30").stdin(Stdio::null());
    // SAFETY: fcntl is async-signal-safe; without FD_CLOEXEC the fd
    // survives the exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let shared = format!("/proc/{}/fd/{fd}", child.id());
    // Bounded: the exec of sleep keeps fd 3; wait until it shows.
    for _ in 0..100 {
        if std::fs::read_link(&shared).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let kept =
        std::fs::read_link(&shared).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
    let me = std::process::id();
    let got = |first| holder::tcp_listener_first(addr, first).map(|h| h.pid);
    let table = [
        (None, Ok(me)),
        (Some(child.id()), Ok(child.id())),
        (Some(me), Ok(me)),
        // One that does not hold it: the walk names the lowest.
        (Some(1), Ok(me)),
    ];
    let results: Vec<_> = table.iter().map(|(first, _)| got(*first)).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(kept, "the child kept the listener across its exec");
    for ((first, want), got) in table.iter().zip(results) {
        assert_eq!(&got, want, "first: {first:?}");
    }
}
