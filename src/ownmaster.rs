//! The user's own ControlMaster: a local forward whose port is held by the
//! live master this very ssh would ride (same effective ControlPath, the
//! master answers the mux alive check with its pid) is no conflict. mux.c
//! `mux_master_process_open_fwd` answers a forward identical to one it
//! holds as already there ("found existing forwarding"), so plain ssh
//! succeeds in silence; rosh-ssh keeps the forward and says nothing. A
//! different forward on the same port fails in the master, and comes back
//! through the log like any other failure.
//!
//! The master is asked over its control socket (mux.rs), not with `ssh -O
//! check`: no ssh is spawned for it. Its pid is noted before the plan is
//! made, so that naming the holder of a busy port looks at the master's
//! own fds first, and walks /proc only when the master does not hold it.

use crate::effective::Effective;
use crate::forward::Kind;
use crate::mux;
use crate::plan::{Decision, Verdict};
use std::path::Path;

/// The pid of the live master on `control_path` (the path as `ssh -G`
/// prints it: tokens and `~` already expanded). `_ssh` is no longer run;
/// callers keep passing it.
pub fn master_pid(_ssh: &Path, control_path: &str) -> Option<u32> {
    alive(control_path)
}

fn alive(control_path: &str) -> Option<u32> {
    mux::alive_check(Path::new(control_path), mux::TIMEOUT).ok()
}

/// Whether this ssh would ride a master on its ControlPath rather than
/// start one: ssh.c/mux.c `muxclient` tries an existing master for `no`,
/// `auto` and `autoask`; `yes` and `ask` start one.
fn rides(eff: &Effective) -> bool {
    eff.control_path != "none"
        && matches!(eff.control_master.as_str(), "false" | "auto" | "autoask")
}

/// Asks for the live master this ssh would ride, when a forward listens on
/// this host (only those can be held by it), and notes its pid in
/// `eff.probe.look_first` for the holder naming. Returns it for
/// [`keep_held`].
pub fn note_master(eff: &mut Effective) -> Option<u32> {
    if !rides(eff) || eff.forwards.iter().all(|f| f.kind == Kind::Remote) {
        return None;
    }
    let pid = alive(&eff.control_path);
    eff.probe.look_first = pid;
    pid
}

/// Keeps the dropped local forwards whose holder is `master`, the live
/// master this ssh rides ([`note_master`]); returns their indexes.
pub fn keep_held(master: Option<u32>, decisions: &mut [Decision]) -> Vec<usize> {
    let mut kept = Vec::new();
    let Some(master) = master else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward;

    fn eff(master: &str, path: &str, fwd: &[(u8, &str)]) -> Effective {
        Effective {
            control_master: master.into(),
            control_path: path.into(),
            forwards: fwd
                .iter()
                .map(|&(l, s)| forward::parse_arg(l, s.as_bytes()).unwrap())
                .collect(),
            ..Effective::default()
        }
    }

    #[test]
    fn the_master_is_asked_for_only_where_it_can_hold_a_port() {
        // A path where nothing answers: asking leaves no pid either way, so
        // what is checked is that no answer is noted where none was asked.
        let dir = crate::tmpdir::PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let ctl = dir.path().join("ctl");
        let ctl = ctl.to_str().unwrap();
        let table = [
            ("auto", "none", vec![(b'L', "3131:h:22")]),
            ("yes", ctl, vec![(b'L', "3131:h:22")]),
            ("ask", ctl, vec![(b'D', "1080")]),
            ("auto", ctl, vec![(b'R', "8082:h:22")]),
            ("auto", ctl, vec![]),
        ];
        for (master, path, fwd) in table {
            let mut e = eff(master, path, &fwd);
            e.probe.look_first = Some(1);
            assert_eq!(note_master(&mut e), None, "{master} {path} {fwd:?}");
            assert_eq!(e.probe.look_first, Some(1), "not asked: {master} {path}");
        }
        for master in ["false", "auto", "autoask"] {
            let mut e = eff(master, ctl, &[(b'R', "8082:h:22"), (b'L', "3131:h:22")]);
            e.probe.look_first = Some(1);
            assert_eq!(note_master(&mut e), None);
            assert_eq!(e.probe.look_first, None, "asked: {master}");
        }
    }

    #[test]
    fn only_dropped_local_forwards_held_by_the_master_are_kept() {
        let d = |letter, spec: &str, holder| Decision {
            forward: forward::parse_arg(letter, spec.as_bytes()).unwrap(),
            opts: vec![],
            verdict: match holder {
                None => Verdict::Free,
                Some(pid) => Verdict::Busy {
                    busy: "in use".into(),
                    holder: Some(pid),
                    held_by: None,
                },
            },
            from_config: None,
        };
        let mut ds = vec![
            d(b'L', "3131:h:22", Some(7)),
            d(b'L', "3132:h:22", Some(8)),
            d(b'D', "1080", Some(7)),
            d(b'L', "3133:h:22", None),
            d(b'R', "8082:h:22", Some(7)),
        ];
        assert_eq!(keep_held(None, &mut ds), Vec::<usize>::new());
        assert_eq!(keep_held(Some(7), &mut ds), vec![0, 2]);
        assert_eq!(ds[0].verdict, Verdict::OwnMaster { pid: 7 });
        assert_eq!(ds[2].verdict, Verdict::OwnMaster { pid: 7 });
        assert!(ds[1].verdict.drops());
        assert_eq!(ds[3].verdict, Verdict::Free);
        assert!(ds[4].verdict.drops());
    }
}
