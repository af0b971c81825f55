//! Putting a dropped forward back into the live connection once its port is
//! free: `ssh -S CTL -O forward` through the connection's control socket.
//!
//! When: a local, dynamic or unix-socket forward whose holder is known waits
//! on a pidfd of that holder (no timer, no CPU while it waits), then probes
//! the bind again (several processes may hold one port: a pidfd fires on
//! exit, and another may still hold it). An unknown or invisible holder is
//! probed on a backoff, 1 s doubling to 10 s. A remote forward is simply
//! asked for again, 5 s doubling to 30 s; a refused try says nothing.
//!
//! mux.c `mux_master_process_open_fwd` answers a forward already in the
//! master's option list as "found existing forwarding" without binding
//! anything, and a forward ssh itself tried and failed stays in that list:
//! those are cancelled first (`mux_master_process_close_fwd` clears the
//! entry; for a local forward without a listener the cancel still succeeds).
//!
//! Everything runs on one thread that ends when ssh ends: [`Restorer::stop`]
//! closes its wake pipe. The `-O` helpers run with BatchMode, stdin from
//! /dev/null and `-F /dev/null` (no config forward of the user's joins in),
//! and die with the wrapper (PR_SET_PDEATHSIG).

use crate::blame;
use crate::forward::{Forward, Kind};

use crate::probe::{self, Opts};
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A forward to put back.
#[derive(Clone, Debug)]
pub struct Item {
    pub forward: Forward,
    /// The forward as the user wrote it, for the `restored` line.
    pub name: String,
    /// ssh tried it and failed: it sits in the master's list, cancel first.
    pub cancel: bool,
    /// The holder the probe named: waited on at once, without naming it again.
    pub holder: Option<u32>,
}

/// Hands new items to the restore thread (clonable: the log reader has one).
#[derive(Clone)]
pub struct Notify {
    queue: Queue,
    wake: Arc<OwnedFd>,
}

/// Items on their way to the thread (a Mutex'd Vec: smaller than a channel).
type Queue = Arc<Mutex<Vec<Item>>>;

impl Notify {
    pub fn send(&self, item: Item) {
        if let Ok(mut q) = self.queue.lock() {
            q.push(item);
        }
        let _ = nix::unistd::write(self.wake.as_fd(), b"!");
    }
}

/// The restore thread.
pub struct Restorer {
    notify: Notify,
    thread: JoinHandle<()>,
}

impl Restorer {
    pub fn start(
        ssh: PathBuf,
        ctl: PathBuf,
        probe: Opts,
        items: Vec<Item>,
    ) -> std::io::Result<Restorer> {
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let queue: Queue = Arc::new(Mutex::new(items));
        let notify = Notify {
            queue: queue.clone(),
            wake: Arc::new(wake_w),
        };
        let ctx = Ctx { ssh, ctl, probe };
        let thread = std::thread::spawn(move || run(ctx, wake_r, queue));
        Ok(Restorer { notify, thread })
    }

    pub fn notify(&self) -> Notify {
        self.notify.clone()
    }

    /// ssh has ended: stop (once every [`Notify`] is gone) and wait.
    pub fn stop(self) {
        drop(self.notify);
        let _ = self.thread.join();
    }
}

struct Ctx {
    ssh: PathBuf,
    ctl: PathBuf,
    probe: Opts,
}

struct Pending {
    item: Item,
    /// When to try next.
    next: Option<Instant>,
    backoff: Duration,
    pidfd: Option<OwnedFd>,
}

const LOCAL_FIRST: Duration = Duration::from_secs(1);
const LOCAL_MAX: Duration = Duration::from_secs(10);
const HOLDER_RECHECK: Duration = Duration::from_secs(30);
const REMOTE_FIRST: Duration = Duration::from_secs(5);
const REMOTE_MAX: Duration = Duration::from_secs(30);

/// Whether the local listen side is free now; if not, its holder's pid
/// when it can be named.
enum Side {
    Free,
    Held(Option<u32>),
}

fn is_free(f: &Forward, o: &Opts) -> bool {
    if let Some((host, port)) = f.local_tcp_listen() {
        probe::tcp(host, port, o).is_ok()
    } else if let Some(p) = f.local_path_listen() {
        probe::path(p, o).is_ok()
    } else {
        true
    }
}

/// The probe's verdict (plan.rs, the same one the run started from), with
/// the holder to wait on when /proc names it.
fn local_side(f: &Forward, o: &Opts) -> Side {
    match crate::plan::verdict(f, o) {
        crate::plan::Verdict::Free => Side::Free,
        v => Side::Held(v.holder_pid()),
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative return is a new fd this process owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Pending {
    fn new(item: Item) -> Pending {
        let remote = item.forward.kind == Kind::Remote;
        let mut p = Pending {
            next: Some(Instant::now() + if remote { REMOTE_FIRST } else { Duration::ZERO }),
            backoff: if remote { REMOTE_FIRST } else { LOCAL_FIRST },
            pidfd: None,
            item,
        };
        // The probe named the holder a moment ago: wait on it right away
        // (if it is already gone, pidfd_open fails and the probe runs now).
        if let Some(fd) = p.item.holder.take().and_then(pidfd_open) {
            p.pidfd = Some(fd);
            p.next = Some(Instant::now() + HOLDER_RECHECK);
        }
        p
    }

    fn later(&mut self, max: Duration) {
        self.next = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(max);
    }

    /// One try; whether the forward is back.
    fn attempt(&mut self, ctx: &Ctx) -> bool {
        if self.item.forward.kind == Kind::Remote {
            if ctx.forward(&mut self.item) {
                return true;
            }
            self.later(REMOTE_MAX);
            return false;
        }
        if self.pidfd.is_some() {
            // The periodic look while the holder lives: a bind probe only
            // (naming the holder walks /proc; the pidfd is still good).
            if !is_free(&self.item.forward, &ctx.probe) {
                self.next = Some(Instant::now() + HOLDER_RECHECK);
                return false;
            }
            self.pidfd = None;
        }
        match local_side(&self.item.forward, &ctx.probe) {
            Side::Held(Some(pid)) => {
                if let Some(fd) = pidfd_open(pid) {
                    // A holder may close its listener and live on: a
                    // probe now and then, far apart, catches that too.
                    self.pidfd = Some(fd);
                    self.next = Some(Instant::now() + HOLDER_RECHECK);
                } else {
                    self.later(LOCAL_MAX);
                }
                false
            }
            Side::Held(None) => {
                self.later(LOCAL_MAX);
                false
            }
            Side::Free => {
                if ctx.forward(&mut self.item) {
                    return true;
                }
                // Lost a race for the port: look again soon.
                self.later(LOCAL_MAX);
                false
            }
        }
    }
}

impl Ctx {
    /// `ssh -O cancel` (when needed) then `ssh -O forward`; whether it took.
    fn forward(&self, item: &mut Item) -> bool {
        let Some(spec) = option(&item.forward) else {
            return false;
        };
        if item.cancel {
            // Fails harmlessly when the master no longer lists it.
            self.mux("cancel", &spec);
            item.cancel = false;
        }
        self.mux("forward", &spec)
    }

    fn mux(&self, op: &str, spec: &str) -> bool {
        let mut cmd = Command::new(&self.ssh);
        cmd.arg0(&self.ssh)
            .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-S"])
            .arg(&self.ctl)
            .args(["-O", op, "-o", spec, "rosh-ssh-restore"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                crate::child::unblock_all();
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.status().is_ok_and(|s| s.success())
    }
}

/// The forward as one `-o` option: its `ssh -G` line (readconf.c reads the
/// same words back).
fn option(f: &Forward) -> Option<String> {
    let keyword: &[u8] = match f.kind {
        Kind::Local => b"localforward ",
        Kind::Remote => b"remoteforward ",
        Kind::Dynamic => b"dynamicforward ",
    };
    let line = f
        .ssh_g_lines()
        .into_iter()
        .rev()
        .find(|l| l.starts_with(keyword))?;
    String::from_utf8(line).ok()
}

fn run(ctx: Ctx, wake: OwnedFd, queue: Queue) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut open = true;
    loop {
        let new: Vec<Item> = queue
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default();
        for item in new {
            if !pending.iter().any(|p| p.item.forward == item.forward) {
                pending.push(Pending::new(item));
            }
        }
        if !open {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < pending.len() {
            let due = pending[i].next.is_some_and(|t| t <= now);
            if due && pending[i].attempt(&ctx) {
                let p = pending.remove(i);
                crate::supervise::log::Dest::Stderr.line(&blame::restored(&p.item.name));
                continue;
            }
            i += 1;
        }
        let timeout = pending
            .iter()
            .filter_map(|p| p.next)
            .min()
            .map(|t| t.saturating_duration_since(Instant::now()));
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d.as_millis().min(30_000) as u32 + 1)
                .unwrap_or(PollTimeout::MAX),
        };
        let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        let with_fd: Vec<usize> = (0..pending.len())
            .filter(|&i| pending[i].pidfd.is_some())
            .collect();
        for &i in &with_fd {
            fds.push(PollFd::new(
                pending[i].pidfd.as_ref().unwrap().as_fd(),
                PollFlags::POLLIN,
            ));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
        let fired = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let mut gone: Vec<usize> = Vec::new();
        for (k, &i) in with_fd.iter().enumerate() {
            if fired(&fds[k + 1]) {
                gone.push(i);
            }
        }
        if fired(&fds[0]) {
            let mut buf = [0u8; 64];
            // End of file: every sender is gone, ssh has ended.
            if let Ok(0) = nix::unistd::read(&wake, &mut buf) {
                open = false;
            }
        }
        for i in gone {
            pending[i].pidfd = None;
            pending[i].next = Some(Instant::now());
        }
    }
}

/// Whether a control path fits a unix socket address: ssh binds
/// `PATH.XXXXXXXXXXXXXXXX` first (mux.c `muxserver_listen`), then renames.
pub fn fits(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().len() + 17 < 108
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_arg;
    use crate::tmpdir::PrivateDir;
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;
    use std::sync::mpsc;

    /// A stand-in ssh for the `-O` runs (tests/stub/mux-recorder, reached
    /// through a symlink in a private directory that holds what it records).
    struct Stub {
        dir: PrivateDir,
        ssh: PathBuf,
    }

    impl Stub {
        fn new(status: i32) -> Stub {
            let dir = PrivateDir::new_in(&std::env::temp_dir()).unwrap();
            let ssh = dir.path().join("ssh");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stub/mux-recorder");
            std::os::unix::fs::symlink(script, &ssh).unwrap();
            dir.file("status", status.to_string().as_bytes()).unwrap();
            Stub { dir, ssh }
        }

        fn ctx(&self) -> Ctx {
            Ctx {
                ssh: self.ssh.clone(),
                ctl: self.dir.path().join("ctl"),
                probe: Opts::default(),
            }
        }

        /// Each run's words after `-S CTL`, one run per entry.
        fn calls(&self) -> Vec<String> {
            let text = std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
            let ctl = format!(
                "-F /dev/null -o BatchMode=yes -S {} ",
                self.ctx().ctl.display()
            );
            text.lines()
                .map(|l| l.strip_prefix(&ctl).unwrap_or(l).to_owned())
                .collect()
        }

        /// Waits (bounded) for `n` runs to be recorded.
        fn wait_calls(&self, n: usize, limit: Duration) -> Vec<String> {
            let end = Instant::now() + limit;
            while self.calls().len() < n && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.calls()
        }
    }

    fn item(letter: u8, spec: &str) -> Item {
        Item {
            forward: parse_arg(letter, spec.as_bytes()).unwrap(),
            name: spec.to_owned(),
            cancel: false,
            holder: None,
        }
    }

    /// A local forward whose listen side is surely free: a socket path in
    /// the stub's directory (a TCP port let go could be taken by another
    /// test at once).
    fn free_spec(stub: &Stub) -> String {
        format!("{}:h:22", stub.dir.path().join("l.sock").display())
    }

    /// `ssh -O forward -o SPEC`, as the stub records it.
    fn forward_call(f: &Forward) -> String {
        format!("-O forward -o {} rosh-ssh-restore", option(f).unwrap())
    }

    /// Stops the restorer on a thread of its own: a restorer that does not
    /// end fails the test instead of hanging it.
    fn stop_within(r: Restorer, limit: Duration) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            r.stop();
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(limit).is_ok(),
            "the restorer did not stop within {limit:?}"
        );
    }

    /// A process holding a TCP listener on a port of its own.
    struct Holder {
        child: std::process::Child,
        port: u16,
    }

    impl Holder {
        fn start() -> Holder {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let fd = l.as_raw_fd();
            let mut cmd = Command::new("sleep");
            cmd.arg("60");
            // SAFETY: dup2 is async-signal-safe; the copy at 3 loses
            // FD_CLOEXEC, so sleep holds the listener.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn().unwrap();
            drop(l);
            Holder { child, port }
        }

        fn end(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            self.end();
        }
    }

    /// Whether `look` finds the port free within a second. A listener let
    /// go can live on briefly: another test's child, forked before its
    /// exec closes the copy (close-on-exec), still holds it.
    fn freed(mut look: impl FnMut() -> bool) -> bool {
        for _ in 0..50 {
            if look() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn near(t: Option<Instant>, from_now: Duration) -> bool {
        let Some(t) = t else { return false };
        let want = Instant::now() + from_now;
        let slack = Duration::from_millis(500);
        t + slack >= want && t <= want + slack
    }

    #[test]
    fn a_control_path_fits_with_the_suffix_mux_c_adds() {
        // mux.c muxserver_listen binds PATH + "." + 16 random characters,
        // and sun_path holds 108 bytes with the NUL.
        assert!(fits(Path::new(&"a".repeat(90))));
        assert!(!fits(Path::new(&"a".repeat(91))));
    }

    #[test]
    fn option_is_the_forwards_ssh_g_line() {
        // As `ssh -G -L 127.0.0.1:3131:h:22 -R 8082:localhost:80 -D 1080
        // -L /tmp/a.sock:/tmp/b.sock h` prints them (OpenSSH 9.2).
        for (letter, spec, want) in [
            (
                b'L',
                "127.0.0.1:3131:h:22",
                "localforward [127.0.0.1]:3131 [h]:22",
            ),
            (
                b'R',
                "8082:localhost:80",
                "remoteforward 8082 [localhost]:80",
            ),
            (b'D', "1080", "dynamicforward 1080"),
            (
                b'L',
                "/tmp/a.sock:/tmp/b.sock",
                "localforward /tmp/a.sock /tmp/b.sock",
            ),
        ] {
            let f = parse_arg(letter, spec.as_bytes()).unwrap();
            assert_eq!(option(&f).as_deref(), Some(want), "{spec}");
        }
    }

    #[test]
    fn pidfd_open_names_live_processes_only() {
        assert!(pidfd_open(std::process::id()).is_some());
        // Above any pid_max (at most 2^22).
        assert!(pidfd_open(1 << 30).is_none());
    }

    #[test]
    fn is_free_probes_the_local_listen_side() {
        let o = Opts::default();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let f = item(b'L', &format!("127.0.0.1:{port}:h:22")).forward;
        assert!(!is_free(&f, &o));
        drop(l);
        assert!(freed(|| is_free(&f, &o)));

        let dir = PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let sock = dir.path().join("s");
        let f = item(b'L', &format!("{}:/tmp/x", sock.display())).forward;
        assert!(is_free(&f, &o));
        let u = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(!is_free(&f, &o));
        drop(u);

        // A remote forward has no local side to hold.
        assert!(is_free(&item(b'R', "8082:localhost:80").forward, &o));
    }

    #[test]
    fn a_new_item_is_tried_at_once_or_in_five_seconds_if_remote() {
        let p = Pending::new(item(b'L', "3131:h:22"));
        assert!(p.next.is_some_and(|t| t <= Instant::now()));
        assert_eq!(p.backoff, LOCAL_FIRST);

        let p = Pending::new(item(b'R', "8082:localhost:80"));
        assert!(near(p.next, REMOTE_FIRST), "{:?}", p.next);
        assert_eq!(p.backoff, REMOTE_FIRST);
    }

    #[test]
    fn a_named_holder_is_waited_on_unless_it_is_gone() {
        let mut it = item(b'L', "3131:h:22");
        it.holder = Some(std::process::id());
        let p = Pending::new(it.clone());
        assert!(p.pidfd.is_some());
        assert!(near(p.next, HOLDER_RECHECK), "{:?}", p.next);

        let mut gone = Command::new("true").spawn().unwrap();
        it.holder = Some(gone.id());
        gone.wait().unwrap();
        let p = Pending::new(it);
        assert!(p.pidfd.is_none());
        assert!(p.next.is_some_and(|t| t <= Instant::now()));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut p = Pending::new(item(b'L', "3131:h:22"));
        for (wait, after) in [(1, 2), (2, 4), (4, 8), (8, 10), (10, 10)] {
            p.later(LOCAL_MAX);
            assert!(near(p.next, Duration::from_secs(wait)), "{:?}", p.next);
            assert_eq!(p.backoff, Duration::from_secs(after));
        }
    }

    #[test]
    fn mux_runs_ssh_dash_o_and_reports_its_status() {
        let ok = Stub::new(0);
        assert!(ok.ctx().mux("check", "x"));
        assert_eq!(ok.calls(), ["-O check -o x rosh-ssh-restore"]);
        let refused = Stub::new(255);
        assert!(!refused.ctx().mux("check", "x"));
    }

    #[test]
    fn a_forward_ssh_tried_is_cancelled_once_then_asked_for() {
        let stub = Stub::new(0);
        let mut it = item(b'R', "8082:localhost:80");
        it.cancel = true;
        let spec = option(&it.forward).unwrap();
        assert!(stub.ctx().forward(&mut it));
        assert!(!it.cancel);
        assert!(stub.ctx().forward(&mut it));
        assert_eq!(
            stub.calls(),
            [
                format!("-O cancel -o {spec} rosh-ssh-restore"),
                forward_call(&it.forward),
                forward_call(&it.forward),
            ]
        );
        let refused = Stub::new(1);
        assert!(!refused.ctx().forward(&mut it));
    }

    #[test]
    fn a_refused_remote_forward_is_asked_for_again_later_up_to_thirty_seconds() {
        let refused = Stub::new(1);
        let mut p = Pending::new(item(b'R', "8082:localhost:80"));
        p.backoff = Duration::from_secs(20);
        assert!(!p.attempt(&refused.ctx()));
        assert!(near(p.next, Duration::from_secs(20)), "{:?}", p.next);
        assert_eq!(p.backoff, REMOTE_MAX);
        assert_eq!(refused.calls(), [forward_call(&p.item.forward)]);

        let ok = Stub::new(0);
        assert!(p.attempt(&ok.ctx()));
    }

    #[test]
    fn a_free_local_port_is_asked_for_and_a_lost_race_backs_off() {
        let ok = Stub::new(0);
        let f = free_spec(&ok);
        let mut p = Pending::new(item(b'L', &f));
        assert!(p.attempt(&ok.ctx()));
        assert_eq!(ok.calls(), [forward_call(&p.item.forward)]);

        let lost = Stub::new(1);
        let mut p = Pending::new(item(b'L', &f));
        assert!(!p.attempt(&lost.ctx()));
        assert!(near(p.next, LOCAL_FIRST), "{:?}", p.next);
        assert_eq!(p.backoff, LOCAL_FIRST * 2);
    }

    #[test]
    fn a_held_port_waits_on_its_holder_without_asking_ssh() {
        let stub = Stub::new(0);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut p = Pending::new(item(b'L', &format!("127.0.0.1:{port}:h:22")));
        // The probe names this process as the holder: its pidfd is waited on.
        assert!(!p.attempt(&stub.ctx()));
        assert!(p.pidfd.is_some());
        assert!(near(p.next, HOLDER_RECHECK), "{:?}", p.next);
        // The periodic look while the holder lives: still held.
        p.next = Some(Instant::now());
        assert!(!p.attempt(&stub.ctx()));
        assert!(p.pidfd.is_some());
        assert!(near(p.next, HOLDER_RECHECK), "{:?}", p.next);
        // The holder closed its listener and lives on: the look finds it free.
        drop(l);
        assert!(freed(|| p.attempt(&stub.ctx())));
        assert!(p.pidfd.is_none());
        assert_eq!(stub.calls(), [forward_call(&p.item.forward)]);
    }

    #[test]
    fn the_restorer_tries_each_forward_once_and_stop_waits_for_it() {
        let stub = Stub::new(0);
        stub.dir.file("delay", b"0.3").unwrap();
        let it = item(b'L', &free_spec(&stub));
        let r = Restorer::start(
            stub.ssh.clone(),
            stub.ctx().ctl,
            Opts::default(),
            vec![it.clone(), it.clone()],
        )
        .unwrap();
        let wake = nix::sys::stat::fstat(r.notify.wake.as_fd()).unwrap().st_ino;
        stop_within(r, Duration::from_secs(5));
        assert_eq!(stub.calls(), [forward_call(&it.forward)]);
        // The helper did not inherit the restorer's wake pipe (close-on-exec):
        // a helper or an ssh that holds it keeps the restorer from ending.
        let fds = std::fs::read_to_string(stub.dir.path().join("fds")).unwrap();
        assert!(fds.contains("-> /dev/null"), "{fds}");
        assert!(!fds.contains(&format!("pipe:[{wake}]")), "{fds}");
    }

    #[test]
    fn a_forward_sent_later_is_tried_and_an_idle_restorer_stops() {
        let stub = Stub::new(0);
        let r = Restorer::start(
            stub.ssh.clone(),
            stub.ctx().ctl,
            Opts::default(),
            Vec::new(),
        )
        .unwrap();
        let it = item(b'L', &free_spec(&stub));
        r.notify().send(it.clone());
        assert_eq!(
            stub.wait_calls(1, Duration::from_secs(5)),
            [forward_call(&it.forward)]
        );
        stop_within(r, Duration::from_secs(5));
    }

    #[test]
    fn a_holders_exit_wakes_the_restorer() {
        let stub = Stub::new(0);
        let mut holder = Holder::start();
        let mut it = item(b'L', &format!("127.0.0.1:{}:h:22", holder.port));
        it.holder = Some(holder.child.id());
        let r = Restorer::start(
            stub.ssh.clone(),
            stub.ctx().ctl,
            Opts::default(),
            vec![it.clone()],
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(stub.calls(), Vec::<String>::new(), "asked while held");
        holder.end();
        // Woken by the pidfd: well before the 30 s recheck.
        assert_eq!(
            stub.wait_calls(1, Duration::from_secs(10)),
            [forward_call(&it.forward)]
        );
        stop_within(r, Duration::from_secs(5));
    }
}
