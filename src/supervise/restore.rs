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
