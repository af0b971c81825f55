//! Putting a dropped forward back into the live connection once its port is
//! free: `ssh -S CTL -O forward` through the connection's control socket,
//! driven by the supervisor's loop (no thread of its own).
//!
//! When: a local, dynamic or unix-socket forward whose holder is known waits
//! on that holder's exit ([`ProcWatch`]: no timer, no CPU while it waits),
//! then probes the bind again (several processes may hold one port: one
//! exits, another may still hold it). An unknown or invisible holder is
//! probed on a backoff, 1 s doubling to 10 s. A remote forward is simply
//! asked for again, 5 s doubling to 30 s; a refused try says nothing.
//!
//! mux.c `mux_master_process_open_fwd` answers a forward already in the
//! master's option list as "found existing forwarding" without binding
//! anything, and a forward ssh itself tried and failed stays in that list:
//! those are cancelled first (`mux_master_process_close_fwd` clears the
//! entry). From OpenSSH 10.1 that cancel fails for a local forward without a
//! listener ("port not found", the entry stays), so `-O forward`'s success
//! proves nothing: a local restore counts only once its port listens (a bind
//! there fails), and a forward the master still lists is asked for again in
//! an equivalent spelling the list does not hold ([`Forward::respelled`]).
//!
//! The `-O` helpers run with BatchMode, stdin from /dev/null and `-F
//! /dev/null` (no config forward of the user's joins in), one at a time per
//! forward; the loop reaps them, and [`Restorer::stop`] ends those still
//! running when ssh ends.

use crate::events::{self, ProcWatch};
use crate::forward::{Forward, Kind};
use crate::probe::{self, Opts};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A forward to put back.
#[derive(Clone, Debug)]
pub struct Item {
    /// Its index in the plan: how the loop names it.
    pub index: usize,
    pub forward: Forward,
    /// ssh tried it and failed: it sits in the master's list, cancel first.
    pub cancel: bool,
    /// The holder the probe named: waited on at once, without naming it again.
    pub holder: Option<u32>,
    /// The addresses waited for, when ssh listens on the forward's others
    /// (a partly bound forward); `None`: all of them.
    pub addrs: Option<Vec<SocketAddr>>,
}

const LOCAL_FIRST: Duration = Duration::from_secs(1);
const LOCAL_MAX: Duration = Duration::from_secs(10);
const HOLDER_RECHECK: Duration = Duration::from_secs(30);
const REMOTE_FIRST: Duration = Duration::from_secs(5);
const REMOTE_MAX: Duration = Duration::from_secs(30);

/// What an `ssh -O` helper in flight was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Cancel,
    Forward,
}

/// What a pending forward waits for.
enum Wait {
    /// The next try, at this time.
    Until(Instant),
    /// Its holder's exit, or a look at the port now and then (a holder may
    /// close its listener and live on).
    Holder { watch: ProcWatch, recheck: Instant },
    /// An `ssh -O` helper.
    Helper { pid: Pid, step: Step },
}

struct Pending {
    item: Item,
    backoff: Duration,
    wait: Wait,
    /// The master still lists the forward after a cancel that failed
    /// (OpenSSH 10.1+): ask for it in another spelling.
    respell: bool,
}

/// Restores in progress, and how to reach the connection.
pub struct Restorer {
    ssh: PathBuf,
    ctl: PathBuf,
    probe: Opts,
    pending: Vec<Pending>,
}

/// Whether the local listen side is free now; if not, its holder's pid
/// when it can be named.
enum Side {
    Free,
    Held(Option<u32>),
}

impl Restorer {
    pub fn new(ssh: PathBuf, ctl: PathBuf, probe: Opts) -> Restorer {
        Restorer {
            ssh,
            ctl,
            probe,
            pending: Vec::new(),
        }
    }

    /// Starts restoring `item`, unless that forward is pending already. A
    /// remote forward waits 5 s (the server just refused it); a local one
    /// waits on the holder the probe named, or is tried at once.
    pub fn add(&mut self, mut item: Item) {
        if self.pending.iter().any(|p| p.item.index == item.index) {
            return;
        }
        let now = Instant::now();
        let remote = item.forward.kind == Kind::Remote;
        let wait = match item.holder.take().and_then(ProcWatch::open) {
            // Already gone: pidfd_open fails and the probe runs now.
            Some(watch) if !remote => Wait::Holder {
                watch,
                recheck: now + HOLDER_RECHECK,
            },
            _ if remote => Wait::Until(now + REMOTE_FIRST),
            _ => Wait::Until(now),
        };
        self.pending.push(Pending {
            backoff: if remote { REMOTE_FIRST } else { LOCAL_FIRST },
            wait,
            respell: false,
            item,
        });
    }

    /// Whether nothing is left to restore.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// The holders waited on: (plan index, descriptor readable at its exit).
    pub fn watches(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.pending
            .iter()
            .filter_map(|p| match &p.wait {
                Wait::Holder { watch, .. } => Some((p.item.index, watch.fd())),
                _ => None,
            })
            .collect()
    }

    /// The helpers in flight, for the loop to reap.
    pub fn helpers(&self) -> Vec<Pid> {
        self.pending
            .iter()
            .filter_map(|p| match p.wait {
                Wait::Helper { pid, .. } => Some(pid),
                _ => None,
            })
            .collect()
    }

    /// When the loop must call [`Restorer::on_time`] next.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|p| match p.wait {
                Wait::Until(t) => Some(t),
                Wait::Holder { recheck, .. } => Some(recheck),
                Wait::Helper { .. } => None,
            })
            .min()
    }

    /// The holder of forward `index` has exited: look at its port now.
    pub fn on_holder_exit(&mut self, index: usize) {
        for p in self.pending.iter_mut().filter(|p| p.item.index == index) {
            if matches!(p.wait, Wait::Holder { .. }) {
                p.wait = Wait::Until(Instant::now());
            }
        }
    }

    /// Runs the tries that are due.
    pub fn on_time(&mut self, now: Instant) {
        for i in 0..self.pending.len() {
            let due = match self.pending[i].wait {
                Wait::Until(t) => t <= now,
                Wait::Holder { recheck, .. } => recheck <= now,
                Wait::Helper { .. } => false,
            };
            if due {
                self.attempt(i);
            }
        }
    }

    /// A helper has ended (`ok`: exit 0). Returns the plan index of a
    /// forward now restored; `None` for a pid that is no helper of this
    /// restorer, and for a try that goes on or failed.
    pub fn on_helper_exit(&mut self, pid: Pid, ok: bool) -> Option<usize> {
        let i = self
            .pending
            .iter()
            .position(|p| matches!(p.wait, Wait::Helper { pid: q, .. } if q == pid))?;
        let Wait::Helper { step, .. } = self.pending[i].wait else {
            return None;
        };
        let local = self.pending[i].item.forward.kind != Kind::Remote;
        match step {
            Step::Cancel => {
                // OpenSSH 10.1+: a local forward without a listener is not
                // cancelled and stays listed ("port not found").
                if !ok && local {
                    self.pending[i].respell = true;
                }
                self.spawn(i, Step::Forward);
                None
            }
            Step::Forward if ok && (!local || self.listens(&self.pending[i].item.forward)) => {
                Some(self.pending.remove(i).item.index)
            }
            Step::Forward => {
                let p = &mut self.pending[i];
                if ok {
                    // "found existing forwarding": nothing was bound.
                    p.respell = true;
                }
                p.later(if local { LOCAL_MAX } else { REMOTE_MAX });
                None
            }
        }
    }

    /// ssh has ended: ends the helpers still running and reaps them.
    pub fn stop(self) {
        for pid in self.helpers() {
            let _ = kill(pid, Signal::SIGTERM);
            let _ = waitpid(pid, None);
        }
    }

    /// One try of forward `i`.
    fn attempt(&mut self, i: usize) {
        let p = &mut self.pending[i];
        if p.item.forward.kind == Kind::Remote {
            let step = if p.item.cancel {
                Step::Cancel
            } else {
                Step::Forward
            };
            return self.spawn(i, step);
        }
        if let Wait::Holder { recheck, .. } = &mut p.wait {
            // The periodic look while the holder lives: a bind probe only
            // (naming the holder walks /proc; the watch is still good).
            if !waited_free(&p.item, &self.probe) {
                *recheck = Instant::now() + HOLDER_RECHECK;
                return;
            }
        }
        match local_side(&p.item, &self.probe) {
            Side::Held(Some(pid)) => match ProcWatch::open(pid) {
                Some(watch) => {
                    p.wait = Wait::Holder {
                        watch,
                        recheck: Instant::now() + HOLDER_RECHECK,
                    }
                }
                None => p.later(LOCAL_MAX),
            },
            Side::Held(None) => p.later(LOCAL_MAX),
            Side::Free => {
                let step = if p.item.cancel {
                    Step::Cancel
                } else {
                    Step::Forward
                };
                self.spawn(i, step);
            }
        }
    }

    /// Starts `ssh -O cancel|forward` for forward `i`; on failure to start,
    /// backs off as for a refusal.
    fn spawn(&mut self, i: usize, step: Step) {
        let p = &mut self.pending[i];
        let forward = if p.respell && step == Step::Forward {
            p.item
                .forward
                .respelled(self.probe.gateway_ports)
                .unwrap_or_else(|| p.item.forward.clone())
        } else {
            p.item.forward.clone()
        };
        let max = if p.item.forward.kind == Kind::Remote {
            REMOTE_MAX
        } else {
            LOCAL_MAX
        };
        // ssh.c sets the forwards up before it opens its control socket
        // (ssh_init_forwarding, then muxserver_listen): a try before the
        // socket is there would reach nothing, and a cancel it made would
        // be lost. Later, then, with nothing consumed.
        let ready = std::fs::symlink_metadata(&self.ctl)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
        let Some(spec) = option(&forward).filter(|_| ready) else {
            return p.later(max);
        };
        let op = match step {
            Step::Cancel => "cancel",
            Step::Forward => "forward",
        };
        match helper(&self.ssh, &self.ctl, op, &spec).spawn() {
            Ok(child) => {
                if step == Step::Cancel {
                    // Once: a try after this one finds the entry cleared.
                    p.item.cancel = false;
                }
                p.wait = Wait::Helper {
                    pid: Pid::from_raw(child.id() as i32),
                    step,
                }
            }
            Err(_) => p.later(max),
        }
    }

    /// Whether every address of a local forward listens now (a bind there
    /// fails): what proves a restore, whatever `-O forward` answered.
    fn listens(&self, f: &Forward) -> bool {
        !is_free(f, &self.probe)
    }
}

impl Pending {
    fn later(&mut self, max: Duration) {
        self.wait = Wait::Until(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(max);
    }
}

/// `ssh -F /dev/null -o BatchMode=yes -S CTL -O OP -o SPEC rosh-ssh-restore`.
fn helper(ssh: &Path, ctl: &Path, op: &str, spec: &str) -> Command {
    let mut cmd = Command::new(ssh);
    cmd.arg0(ssh)
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-S"])
        .arg(ctl)
        .args(["-O", op, "-o", spec, "rosh-ssh-restore"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: child_reset and tie_to_parent are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            events::child_reset();
            events::tie_to_parent(parent)
        });
    }
    cmd
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

/// Whether what `item` waits for is free: the addresses ssh could not bind
/// (the others are ssh's own), or its whole listen side.
fn waited_free(item: &Item, o: &Opts) -> bool {
    match &item.addrs {
        Some(addrs) => addrs.iter().all(|&a| probe::tcp_addr(a).is_ok()),
        None => is_free(&item.forward, o),
    }
}

/// The probe's verdict (plan.rs, the same one the run started from), with
/// the holder to wait on when the system names it.
fn local_side(item: &Item, o: &Opts) -> Side {
    let v = match &item.addrs {
        Some(addrs) => match addrs.iter().find_map(|&a| probe::tcp_addr(a).err()) {
            Some(busy) => crate::plan::busy_verdict(busy, o.look_first),
            None => crate::plan::Verdict::Free,
        },
        None => crate::plan::verdict(&item.forward, o),
    };
    match v {
        crate::plan::Verdict::Free => Side::Free,
        v => Side::Held(v.holder_pid()),
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

/// Whether a control path fits a unix socket address: ssh binds
/// `PATH.XXXXXXXXXXXXXXXX` first (mux.c `muxserver_listen`), then renames;
/// sun_path holds the NUL too (108 bytes on Linux, 104 on the BSDs).
pub fn fits(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().len() + 17 < crate::forward::PATH_MAX_SUN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_arg;
    use crate::tmpdir::PrivateDir;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::wait::{WaitPidFlag, WaitStatus};
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    /// A stand-in ssh for the `-O` runs (tests/stub/mux-recorder, reached
    /// through a symlink in a private directory that holds what it records).
    struct Stub {
        dir: PrivateDir,
        ssh: PathBuf,
        /// The control socket the master would have made (nobody answers
        /// it: the stub is asked instead).
        _ctl: std::os::unix::net::UnixListener,
    }

    impl Stub {
        fn new(status: i32) -> Stub {
            let dir = PrivateDir::new_in(&std::env::temp_dir()).unwrap();
            let ssh = dir.path().join("ssh");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stub/mux-recorder");
            std::os::unix::fs::symlink(script, &ssh).unwrap();
            dir.file("status", status.to_string().as_bytes()).unwrap();
            let _ctl = std::os::unix::net::UnixListener::bind(dir.path().join("ctl")).unwrap();
            Stub { dir, ssh, _ctl }
        }

        fn ctl(&self) -> PathBuf {
            self.dir.path().join("ctl")
        }

        fn restorer(&self) -> Restorer {
            Restorer::new(self.ssh.clone(), self.ctl(), Opts::default())
        }

        /// Each run's words after `-S CTL`, one run per entry.
        fn calls(&self) -> Vec<String> {
            let text = std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
            let ctl = format!("-F /dev/null -o BatchMode=yes -S {} ", self.ctl().display());
            text.lines()
                .map(|l| l.strip_prefix(&ctl).unwrap_or(l).to_owned())
                .collect()
        }
    }

    fn item(letter: u8, spec: &str) -> Item {
        Item {
            index: 0,
            forward: parse_arg(letter, spec.as_bytes()).unwrap(),
            cancel: false,
            holder: None,
            addrs: None,
        }
    }

    /// A local forward whose listen side is surely free: a socket path in
    /// the stub's directory (a TCP port let go could be taken by another
    /// test at once).
    fn free_spec(stub: &Stub) -> String {
        format!("{}:h:22", stub.dir.path().join("l.sock").display())
    }

    /// `ssh -O OP -o SPEC`, as the stub records it.
    fn call(op: &str, f: &Forward) -> String {
        format!("-O {op} -o {} rosh-ssh-restore", option(f).unwrap())
    }

    /// Drives `r` as the supervisor's loop does (helpers polled, not
    /// signalled) until `done` holds or `bound` passes; returns what was
    /// restored.
    fn drive(
        r: &mut Restorer,
        bound: Duration,
        done: impl Fn(&Restorer, &[usize]) -> bool,
    ) -> Vec<usize> {
        let end = Instant::now() + bound;
        let mut restored = Vec::new();
        while Instant::now() < end {
            for pid in r.helpers() {
                let ok = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, c)) => c == 0,
                    Ok(WaitStatus::Signaled(..)) => false,
                    _ => continue,
                };
                restored.extend(r.on_helper_exit(pid, ok));
            }
            r.on_time(Instant::now());
            if done(r, &restored) {
                break;
            }
            let fired: Vec<usize> = {
                let w = r.watches();
                let mut fds: Vec<PollFd> = w
                    .iter()
                    .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
                    .collect();
                let _ = poll(&mut fds, PollTimeout::from(10u8));
                w.iter()
                    .zip(&fds)
                    .filter(|(_, f)| f.revents().is_some_and(|e| !e.is_empty()))
                    .map(|((i, _), _)| *i)
                    .collect()
            };
            for i in fired {
                r.on_holder_exit(i);
            }
        }
        restored
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
            // SAFETY: dup2 and fcntl are async-signal-safe. The copy at 3
            // is not close-on-exec (dup2 onto itself would keep the flag:
            // cleared explicitly), so sleep holds the listener.
            unsafe {
                cmd.pre_exec(move || {
                    if (fd != 3 && libc::dup2(fd, 3) < 0) || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
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

    /// Whether `look` holds within a second. A listener let go can live on
    /// briefly: another test's child, forked before its exec closes the
    /// copy (close-on-exec), still holds it.
    fn within_a_second(mut look: impl FnMut() -> bool) -> bool {
        for _ in 0..50 {
            if look() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether this build waits on a holder's exit (pidfd, kqueue); the
    /// portable build on Linux has neither and probes on the backoff.
    fn watching() -> bool {
        cfg!(any(
            all(target_os = "linux", not(rosh_portable)),
            target_os = "macos",
            target_os = "freebsd"
        ))
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
        // and sun_path holds the NUL too.
        let most = crate::forward::PATH_MAX_SUN - 18;
        assert!(fits(Path::new(&"a".repeat(most))));
        assert!(!fits(Path::new(&"a".repeat(most + 1))));
        #[cfg(target_os = "linux")]
        assert_eq!(most, 90);
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
    fn is_free_probes_the_local_listen_side() {
        let o = Opts::default();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let f = item(b'L', &format!("127.0.0.1:{port}:h:22")).forward;
        assert!(!is_free(&f, &o));
        drop(l);
        assert!(within_a_second(|| is_free(&f, &o)));

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
    fn a_new_item_is_tried_at_once_in_five_seconds_if_remote_or_at_its_holders_exit() {
        let stub = Stub::new(0);
        let mut r = stub.restorer();
        r.add(item(b'L', "3131:h:22"));
        assert!(r.deadline().is_some_and(|t| t <= Instant::now()));
        assert_eq!(r.pending[0].backoff, LOCAL_FIRST);

        let mut r = stub.restorer();
        r.add(item(b'R', "8082:localhost:80"));
        assert!(near(r.deadline(), REMOTE_FIRST), "{:?}", r.deadline());
        assert_eq!(r.pending[0].backoff, REMOTE_FIRST);

        let mut it = item(b'L', "3131:h:22");
        it.holder = Some(std::process::id());
        let mut r = stub.restorer();
        r.add(it.clone());
        if watching() {
            assert_eq!(r.watches().len(), 1);
            assert!(near(r.deadline(), HOLDER_RECHECK), "{:?}", r.deadline());
        } else {
            // Nothing to wait on: the probe runs now, then on the backoff.
            assert!(r.watches().is_empty());
            assert!(r.deadline().is_some_and(|t| t <= Instant::now()));
        }

        // A holder already gone: tried at once.
        let mut gone = Command::new("true").spawn().unwrap();
        it.holder = Some(gone.id());
        gone.wait().unwrap();
        let mut r = stub.restorer();
        r.add(it.clone());
        assert!(r.watches().is_empty());
        assert!(r.deadline().is_some_and(|t| t <= Instant::now()));

        // The same forward twice is one restore.
        r.add(it);
        assert_eq!(r.pending.len(), 1);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let stub = Stub::new(0);
        let mut r = stub.restorer();
        r.add(item(b'L', "3131:h:22"));
        let p = &mut r.pending[0];
        for (wait, after) in [(1, 2), (2, 4), (4, 8), (8, 10), (10, 10)] {
            p.later(LOCAL_MAX);
            let Wait::Until(t) = p.wait else { panic!() };
            assert!(near(Some(t), Duration::from_secs(wait)));
            assert_eq!(p.backoff, Duration::from_secs(after));
        }
    }

    #[test]
    fn a_free_local_port_is_asked_for_once_and_counts_when_it_listens() {
        let stub = Stub::new(0);
        let mut r = stub.restorer();
        let it = item(b'L', &free_spec(&stub));
        r.add(it.clone());
        // The stub binds nothing: `-O forward` said yes, nothing listens.
        let restored = drive(&mut r, Duration::from_millis(700), |_, _| false);
        assert!(restored.is_empty());
        assert_eq!(stub.calls(), [call("forward", &it.forward)]);
        // Its next try asks in another spelling, which the master's list
        // cannot hold ("found existing forwarding", OpenSSH 10.1+).
        assert!(r.pending[0].respell);
        let sock = stub.dir.path().join("l.sock");
        let _listening = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        r.pending[0].wait = Wait::Until(Instant::now());
        // Now held: by the listener above (in the real run, the master).
        r.pending[0].item.cancel = false;
        let restored = drive(&mut r, Duration::from_secs(5), |r, _| r.is_idle());
        assert!(restored.is_empty() || restored == [0], "{restored:?}");
    }

    #[test]
    fn a_forward_ssh_tried_is_cancelled_once_then_asked_for() {
        let stub = Stub::new(0);
        let mut r = stub.restorer();
        let mut it = item(b'R', "8082:localhost:80");
        it.cancel = true;
        r.add(it.clone());
        r.pending[0].wait = Wait::Until(Instant::now());
        let restored = drive(&mut r, Duration::from_secs(5), |r, _| r.is_idle());
        assert_eq!(restored, [0]);
        assert_eq!(
            stub.calls(),
            [call("cancel", &it.forward), call("forward", &it.forward)]
        );
    }

    #[test]
    fn nothing_is_asked_before_the_control_socket_is_there() {
        // ssh sets up its forwards before it opens the control socket.
        let stub = Stub::new(0);
        let mut r = Restorer::new(
            stub.ssh.clone(),
            stub.dir.path().join("not-yet"),
            Opts::default(),
        );
        let mut it = item(b'R', "8082:localhost:80");
        it.cancel = true;
        r.add(it);
        r.pending[0].wait = Wait::Until(Instant::now());
        drive(&mut r, Duration::from_millis(300), |_, _| false);
        assert_eq!(stub.calls(), Vec::<String>::new());
        // The cancel is still owed, and the next try is on the backoff.
        assert!(r.pending[0].item.cancel);
        assert!(near(r.deadline(), REMOTE_FIRST), "{:?}", r.deadline());
    }

    #[test]
    fn a_refused_remote_forward_is_asked_for_again_later_up_to_thirty_seconds() {
        let refused = Stub::new(1);
        let mut r = refused.restorer();
        let it = item(b'R', "8082:localhost:80");
        r.add(it.clone());
        r.pending[0].wait = Wait::Until(Instant::now());
        r.pending[0].backoff = Duration::from_secs(20);
        drive(
            &mut r,
            Duration::from_secs(5),
            |r, _| matches!(r.pending[0].wait, Wait::Until(t) if t > Instant::now()),
        );
        assert!(
            near(r.deadline(), Duration::from_secs(20)),
            "{:?}",
            r.deadline()
        );
        assert_eq!(r.pending[0].backoff, REMOTE_MAX);
        assert_eq!(refused.calls(), [call("forward", &it.forward)]);
    }

    #[test]
    fn after_a_cancel_that_fails_a_local_forward_is_asked_for_in_another_spelling() {
        // OpenSSH 10.1+: "port not found", the entry stays in the master.
        let stub = Stub::new(0);
        stub.dir.file("status-cancel", b"255").unwrap();
        let mut r = stub.restorer();
        let mut it = item(b'L', &free_spec(&stub));
        it.cancel = true;
        r.add(it.clone());
        drive(&mut r, Duration::from_secs(5), |_, _| {
            stub.calls().len() == 2
        });
        let respelled = it.forward.respelled(false).unwrap();
        assert_eq!(
            stub.calls(),
            [call("cancel", &it.forward), call("forward", &respelled)]
        );
    }

    #[test]
    fn a_held_port_waits_on_its_holder_without_asking_ssh_and_its_exit_wakes_it() {
        let stub = Stub::new(0);
        let mut holder = Holder::start();
        let mut it = item(b'L', &format!("127.0.0.1:{}:h:22", holder.port));
        it.holder = Some(holder.child.id());
        let mut r = stub.restorer();
        r.add(it.clone());
        assert_eq!(
            r.watches().len(),
            usize::from(watching()),
            "waits on the holder"
        );
        drive(&mut r, Duration::from_millis(300), |_, _| false);
        assert_eq!(stub.calls(), Vec::<String>::new(), "asked while held");
        if watching() {
            assert_eq!(r.watches().len(), 1, "waits on the holder");
            // The periodic look while the holder lives: still held, no ask.
            if let Wait::Holder { recheck, .. } = &mut r.pending[0].wait {
                *recheck = Instant::now();
            }
            drive(&mut r, Duration::from_millis(100), |_, _| false);
            assert_eq!(r.watches().len(), 1, "waits on the holder");
            assert!(near(r.deadline(), HOLDER_RECHECK), "{:?}", r.deadline());
            assert_eq!(stub.calls(), Vec::<String>::new());
        }
        let started = Instant::now();
        holder.end();
        // Woken by the holder's exit, well before the 30 s recheck; without
        // a watch, found by the probe on its backoff (1, 2, 4 s ...).
        let bound = if watching() { 5 } else { 12 };
        drive(&mut r, Duration::from_secs(bound), |_, _| {
            !stub.calls().is_empty()
        });
        assert!(started.elapsed() < Duration::from_secs(bound));
        assert_eq!(stub.calls(), [call("forward", &it.forward)]);
    }

    #[test]
    fn stop_ends_the_helper_in_flight_which_inherits_no_descriptor_of_the_loop() {
        let stub = Stub::new(0);
        stub.dir.file("delay", b"30").unwrap();
        let holder = Holder::start();
        let mut r = stub.restorer();
        let mut held = item(b'L', &format!("127.0.0.1:{}:h:22", holder.port));
        held.index = 1;
        held.holder = Some(holder.child.id());
        r.add(held);
        r.add(item(b'L', &free_spec(&stub)));
        drive(&mut r, Duration::from_secs(5), |r, _| {
            !r.helpers().is_empty()
        });
        let pid = r.helpers()[0];
        // The descriptor the loop polls for the holder (none when this
        // build has no way to watch one).
        let watched = r.watches().first().map(|(_, fd)| {
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
        });
        assert_eq!(watched.is_some(), watching());
        // The helper has listed its descriptors (then it sleeps).
        let fds = stub.dir.path().join("fds");
        assert!(within_a_second(
            || std::fs::read_to_string(&fds).is_ok_and(|t| t.contains("-> /dev/null"))
        ));
        let started = Instant::now();
        r.stop();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            nix::sys::signal::kill(pid, None),
            Err(nix::errno::Errno::ESRCH),
            "the helper lives on"
        );
        let fds = std::fs::read_to_string(&fds).unwrap();
        if let Some(w) = watched {
            assert!(!fds.contains(&*w.to_string_lossy()), "{fds}");
        }
    }

    #[test]
    fn respelled_forwards_bind_what_the_original_binds() {
        // (spec, GatewayPorts, respelled listen side as ssh -G prints it)
        let table: &[(&str, bool, Option<&str>)] = &[
            (
                "3131:h:22",
                false,
                Some("localforward [localhost]:3131 [h]:22"),
            ),
            (
                "localhost:3131:h:22",
                false,
                Some("localforward 3131 [h]:22"),
            ),
            ("3131:h:22", true, None),
            ("*:3131:h:22", false, Some("localforward []:3131 [h]:22")),
            (":3131:h:22", true, Some("localforward [*]:3131 [h]:22")),
            (
                "127.0.0.1:3131:h:22",
                false,
                Some("localforward [127.0.1]:3131 [h]:22"),
            ),
            (
                "[::1]:3131:h:22",
                false,
                Some("localforward [0:0:0:0:0:0:0:1]:3131 [h]:22"),
            ),
            ("myhost:3131:h:22", false, None),
            (
                "/run/a.sock:h:22",
                false,
                Some("localforward /run/./a.sock [h]:22"),
            ),
        ];
        for (spec, gw, want) in table {
            let f = parse_arg(b'L', spec.as_bytes()).unwrap();
            let got = f.respelled(*gw).and_then(|g| option(&g));
            assert_eq!(got.as_deref(), *want, "{spec} GatewayPorts={gw}");
        }
        assert_eq!(item(b'R', "8082:h:22").forward.respelled(false), None);
        // The respelled address binds the same socket: the probe of one
        // finds the other's listener.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let f = parse_arg(b'L', format!("127.0.0.1:{port}:h:22").as_bytes()).unwrap();
        let g = f.respelled(false).unwrap();
        assert!(!is_free(&g, &Opts::default()));
    }
}
