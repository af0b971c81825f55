//! The user's own ControlMaster: a local forward whose port is held by the
//! live master this very ssh would ride (same effective ControlPath, `ssh
//! -O check` answers) is no conflict. mux.c `mux_master_process_open_fwd`
//! answers a forward identical to one it holds as already there ("found
//! existing forwarding"), so plain ssh succeeds in silence; rosh-ssh keeps
//! the forward and says nothing. A different forward on the same port fails
//! in the master, and comes back through the log like any other failure.

use crate::effective::Effective;
use crate::forward::Kind;
use crate::plan::{Decision, Verdict};
use std::path::Path;
use std::process::{Command, Stdio};

/// The pid of the live master on `control_path`, from `ssh -O check`.
pub fn master_pid(ssh: &Path, control_path: &str) -> Option<u32> {
    let out = Command::new(ssh)
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-S"])
        .arg(control_path)
        .args(["-O", "check", "rosh-ssh-master-check"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // mux.c: `Master running (pid=%u)\r\n`.
    let text = String::from_utf8_lossy(&out.stderr);
    let rest = &text[text.find("Master running (pid=")? + 20..];
    rest[..rest.find(')')?].parse().ok()
}

/// Keeps the dropped local forwards whose holder is the user's live master;
/// returns their indexes. Asks ssh only when one was dropped and a ControlPath
/// is set, so a run that dropped nothing costs nothing more.
pub fn keep_held(ssh: &Path, eff: &Effective, decisions: &mut [Decision]) -> Vec<usize> {
    let mut kept = Vec::new();
    if eff.control_path == "none"
        // ssh.c: only these ride a running master; `yes`/`ask` start one.
        || !matches!(eff.control_master.as_str(), "false" | "auto" | "autoask")
        || !decisions
            .iter()
            .any(|d| d.verdict.drops() && d.forward.kind != Kind::Remote)
    {
        return kept;
    }
    let Some(master) = master_pid(ssh, &eff.control_path) else {
        return kept;
    };
    for (i, d) in decisions.iter_mut().enumerate() {
        if !d.verdict.drops() || d.forward.kind == Kind::Remote {
            continue;
        }
        if d.verdict.holder_pid() == Some(master) {
            d.verdict = Verdict::OwnMaster { pid: master };
            kept.push(i);
        }
    }
    kept
}
