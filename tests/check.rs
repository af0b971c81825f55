//! `rosh-ssh --check`: the report of forwards, probes, holders and verdicts.
mod lab;

use lab::{Lab, PortHolder, rosh_ssh};
use std::process::{Command, Stdio};

#[test]
fn check_reports_forwards_probes_holders_and_the_server() {
    let Some(lab) = Lab::start() else { return };
    let local = PortHolder::v4();
    let remote_v4 = lab::fresh_listener();
    let remote = remote_v4.local_addr().unwrap().port();
    let cfg = lab.config_with(
        "check.conf",
        &format!(
            "Host lab\n  LocalForward 127.0.0.1:{} localhost:22\n  ExitOnForwardFailure yes\n",
            local.port
        ),
    );
    let r = format!("{remote}:localhost:22");
    let base = ["-F", cfg.to_str().unwrap(), "-R", &r, "lab"];
    let out = Command::new(rosh_ssh())
        .arg("--check")
        .args(base)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let want_local = format!(
        "LocalForward 127.0.0.1:{p} localhost:22 ({c}:2)\n  from: {c}:2\n  \
         ssh -G: localforward [127.0.0.1]:{p} [localhost]:22\n  probe: in use: 127.0.0.1:{p}, held by pid {me} (",
        p = local.port,
        c = cfg.display(),
        me = std::process::id()
    );
    assert!(text.contains(&want_local), "{text}");
    assert!(text.contains("  rosh-ssh: drops it\n"), "{text}");
    assert!(
        text.contains("ExitOnForwardFailure yes, LogLevel ERROR\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "-R {r}\n  from: command line -R {r}\n  ssh -G: remoteforward {remote} [localhost]:22\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("  probe: on the server (check with --check --remote)"),
        "{text}"
    );

    // --remote: one connection; the server (this machine) has the port taken.
    let remote_check = || {
        let out = Command::new(rosh_ssh())
            .args(["--check", "--remote"])
            .args(base)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = remote_check();
    assert!(
        text.contains(&format!(
            "  probe: taken on the server: port {remote} is listening there"
        )),
        "{text}"
    );
    assert!(text.contains("tmux sessions"), "{text}");
    drop(remote_v4);
    let text = remote_check();
    assert!(
        text.contains(&format!(
            "  probe: free on the server: nothing listens on port {remote}"
        )),
        "{text}"
    );
}

#[test]
fn proxy_mode_names_the_forward_of_its_parent_ssh_that_will_fail() {
    let Some(lab) = Lab::start() else { return };
    let held = PortHolder::v4();
    let cfg = lab.config_with(
        "proxy.conf",
        &format!(
            "Host lab\n  LocalForward 127.0.0.1:{} localhost:22\n  ProxyCommand {} --proxy %h %p\n",
            held.port,
            rosh_ssh().display()
        ),
    );
    // The real ssh, as an editor's remote extension would run it.
    let out = Command::new(lab::SSH)
        .args(["-F", cfg.to_str().unwrap(), "lab", "echo", "proxied"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "proxied\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "rosh-ssh: LocalForward 127.0.0.1:{p} localhost:22 ({c}:2): in use: 127.0.0.1:{p}, held by pid {me} (",
        p = held.port,
        c = cfg.display(),
        me = std::process::id()
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(
        err.lines()
            .next()
            .unwrap()
            .ends_with("; ssh will fail to listen there"),
        "{err}"
    );
}
