//! rosh-ssh in a real terminal (a private local tmux): signals the terminal
//! sends to the whole foreground group reach ssh once, not twice.
mod lab;

use lab::{TempDir, rosh_ssh};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // End the server this test started, by its pid.
        let out = self.cmd(&["display-message", "-p", "#{pid}"]);
        if let Ok(pid) = String::from_utf8_lossy(&out.stdout).trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn terminal_sigint_reaches_ssh_once_and_a_kill_reaches_it_too() {
    if !lab::require("/usr/bin/tmux") {
        return;
    }
    let dir = TempDir::new("tty");
    let log = dir.path().join("signals");
    let ssh = dir.path().join("ssh");
    fs::write(
        &ssh,
        format!(
            "#!/usr/bin/env python3\nimport signal, sys\n\
             if sys.argv[1] == '-G': sys.exit(0)\n\
             sigs = {{signal.SIGINT, signal.SIGUSR1, signal.SIGTERM}}\n\
             signal.pthread_sigmask(signal.SIG_BLOCK, sigs)\n\
             open('{log}', 'a').write('ready\\n')\n\
             while True:\n\
             \x20   i = signal.sigwaitinfo(sigs)\n\
             \x20   if i.si_signo == signal.SIGTERM: sys.exit(7)\n\
             \x20   who = 'kernel' if i.si_code == 0x80 else 'pid'\n\
             \x20   open('{log}', 'a').write(signal.Signals(i.si_signo).name + ' ' + who + '\\n')\n",
            log = log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
    let tmux = Tmux {
        socket: dir.path().join("tmux.sock"),
    };
    let status = dir.path().join("status");
    let shell_cmd = format!(
        "ROSH_SSH={ssh} {rosh} -L 4444:h:22 host; echo $? > {status}; sleep 30",
        ssh = ssh.display(),
        rosh = rosh_ssh().display(),
        status = status.display()
    );
    let out = tmux.cmd(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        &shell_cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = || fs::read_to_string(&log).unwrap_or_default();
    wait_for("the stub ssh", || read() == "ready\n");
    // ^C from the terminal: the kernel signals the whole foreground group.
    tmux.cmd(&["send-keys", "C-c"]);
    wait_for("SIGINT", || read().contains("SIGINT"));
    // A signal sent to the wrapper alone is passed on. The wrapper passes
    // signals on in the order it gets them, and the stub takes the lowest
    // pending one first: a SIGINT the wrapper passed on as well would be
    // logged before this SIGUSR1 (or merge with the first), so no fixed
    // wait is needed to see that ^C arrived once, from the terminal.
    let wrapper = pid_of_comm("rosh-ssh", dir.path());
    nix::sys::signal::kill(wrapper, nix::sys::signal::Signal::SIGUSR1).unwrap();
    wait_for("SIGUSR1", || read().contains("SIGUSR1"));
    assert_eq!(read(), "ready\nSIGINT kernel\nSIGUSR1 pid\n");
    nix::sys::signal::kill(wrapper, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for("the end", || {
        fs::read_to_string(&status).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(fs::read_to_string(&status).unwrap(), "7\n");
}

/// The rosh-ssh process whose environment points at this test's stub.
fn pid_of_comm(comm: &str, marker: &std::path::Path) -> nix::unistd::Pid {
    let marker = marker.to_string_lossy().into_owned();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let c = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let env = fs::read(e.path().join("environ")).unwrap_or_default();
        if c.trim() == comm && String::from_utf8_lossy(&env).contains(&marker) {
            return nix::unistd::Pid::from_raw(pid);
        }
    }
    panic!("no {comm} process found");
}

#[test]
fn ssh_suspended_by_its_escape_suspends_the_wrapper_and_fg_resumes_both() {
    if !lab::require("/usr/bin/tmux") {
        return;
    }
    let dir = TempDir::new("tstp");
    let log = dir.path().join("log");
    let ssh = dir.path().join("ssh");
    // Like ssh's `~^Z`: stop itself (clientloop.c kill(getpid(), SIGTSTP)).
    fs::write(
        &ssh,
        format!(
            "#!/usr/bin/env python3\nimport os, signal, sys\n\
             if sys.argv[1] == '-G': sys.exit(0)\n\
             open('{log}', 'a').write('ready\\n')\n\
             os.kill(os.getpid(), signal.SIGTSTP)\n\
             open('{log}', 'a').write('continued\\n')\n",
            log = log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
    let tmux = Tmux {
        socket: dir.path().join("tmux.sock"),
    };
    let out = tmux.cmd(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "30",
        "env PS1='$ ' bash --norc --noprofile -i",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = dir.path().join("status");
    let line = format!(
        "ROSH_SSH={} {} -L 4444:h:22 host",
        ssh.display(),
        rosh_ssh().display()
    );
    tmux.cmd(&["send-keys", "-l", &line]);
    tmux.cmd(&["send-keys", "Enter"]);
    wait_for("the stub ssh", || {
        fs::read_to_string(&log).unwrap_or_default() == "ready\n"
    });
    // The shell sees its job stop and gives the prompt back.
    let pane = || String::from_utf8_lossy(&tmux.cmd(&["capture-pane", "-p"]).stdout).into_owned();
    wait_for("the job to stop", || pane().contains("Stopped"));
    assert!(!log.exists() || fs::read_to_string(&log).unwrap() == "ready\n");
    tmux.cmd(&[
        "send-keys",
        "-l",
        &format!("fg; echo status=$? > {}", status.display()),
    ]);
    tmux.cmd(&["send-keys", "Enter"]);
    wait_for("the job to end", || {
        fs::read_to_string(&status).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(fs::read_to_string(&status).unwrap(), "status=0\n");
    assert_eq!(fs::read_to_string(&log).unwrap(), "ready\ncontinued\n");
}
