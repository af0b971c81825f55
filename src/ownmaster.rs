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
//! check`: no ssh is spawned for it. It is asked once per run, before the
//! plan is made: naming the holder of a busy port looks at the master's own
//! fds first (and walks /proc only when the master does not hold it), the
//! plan keeps what the master holds (`Plan::keep_held_by`), and the policy
//! knows whether a restore can go through it.

use crate::effective::Effective;
use crate::mux;
use std::path::Path;

/// The pid of the live master on the effective ControlPath (the path as
/// `ssh -G` prints it: tokens and `~` already expanded), asked over its
/// control socket; `None` without a ControlPath, or with nothing alive
/// there.
pub fn master(eff: &Effective) -> Option<u32> {
    if eff.control_path == "none" {
        return None;
    }
    mux::alive_check(Path::new(&eff.control_path), mux::TIMEOUT).ok()
}

/// Whether this ssh would ride a master on its ControlPath rather than
/// start one: ssh.c/mux.c `muxclient` tries an existing master for `no`,
/// `auto` and `autoask`; `yes` and `ask` start one.
pub fn rides(eff: &Effective) -> bool {
    eff.control_path != "none"
        && matches!(eff.control_master.as_str(), "false" | "auto" | "autoask")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_control_masters_are_ridden() {
        let eff = |master: &str, path: &str| Effective {
            control_master: master.into(),
            control_path: path.into(),
            ..Effective::default()
        };
        let table = [
            ("false", "/c", true),
            ("auto", "/c", true),
            ("autoask", "/c", true),
            ("true", "/c", false),
            ("ask", "/c", false),
            ("auto", "none", false),
        ];
        for (m, p, want) in table {
            assert_eq!(rides(&eff(m, p)), want, "{m} {p}");
        }
    }

    #[test]
    fn no_control_path_no_master_and_nothing_asked() {
        let e = Effective {
            control_path: "none".into(),
            ..Effective::default()
        };
        assert_eq!(master(&e), None);
        // A path where nothing listens: no master either.
        let dir = crate::tmpdir::PrivateDir::new_in(&std::env::temp_dir()).unwrap();
        let e = Effective {
            control_path: dir.path().join("ctl").to_string_lossy().into_owned(),
            ..Effective::default()
        };
        assert_eq!(master(&e), None);
    }
}
