//! The pause before the next attempt.
//!
//! After a session that started, rosh's pause (`-I`). While the server
//! answers but no session starts (a refused key, MaxStartups), the pause
//! doubles, from at least a second, up to a minute: polite, and never a
//! lockout of our own making. OpenSSH 9.8+ sshd penalises a source address
//! for each connection that fails before logging in (PerSourcePenalties,
//! sshd_config(5): authfail 5 s, noauth 1 s, ...; srclimit.c
//! srclimit_penalise adds each penalty to what is left of the last one) and
//! refuses it once more than `min` (15 s) is outstanding. Retries 1, 2, 4, 8
//! ... s apart leave at most 13 s outstanding after refused keys (5 s each),
//! where retries without a pause would reach it on the fourth. When the
//! server already refuses (it closes the connection before its greeting,
//! as sshd does for a penalised source and for MaxStartups), the pause is
//! at least that minimum: retrying sooner is sure to be refused again.

/// Why the next attempt is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// A session had started (and was lost, or its client was killed).
    AfterSession,
    /// The server answered, but no session started.
    Refused,
    /// The server closed the connection before its greeting.
    Dropped,
}

/// Longest pause while refused.
pub const MAX: u32 = 60;
/// sshd's default PerSourcePenalties `min:15s`.
pub const PENALTY_MIN: u32 = 15;

/// `pause` is `-I`; `wait` the pause the last refusal left. Returns the
/// seconds to sleep now and the `wait` to remember.
pub fn next(retry: Retry, pause: u32, wait: u32) -> (u32, u32) {
    match retry {
        Retry::AfterSession => (pause, pause),
        Retry::Refused => {
            let sleep = wait.clamp(1, MAX);
            (sleep, sleep.saturating_mul(2).min(MAX))
        }
        Retry::Dropped => {
            let sleep = wait.clamp(PENALTY_MIN, MAX);
            (sleep, sleep.saturating_mul(2).min(MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pause: u32, first: u32, retries: &[Retry]) -> Vec<u32> {
        let mut wait = first;
        retries
            .iter()
            .map(|&r| {
                let (sleep, w) = next(r, pause, wait);
                wait = w;
                sleep
            })
            .collect()
    }

    #[test]
    fn table() {
        use Retry::*;
        assert_eq!(series(1, 1, &[AfterSession, AfterSession]), [1, 1]);
        assert_eq!(series(0, 0, &[AfterSession]), [0]);
        assert_eq!(series(30, 30, &[AfterSession]), [30]);
        // Refused: from at least 1 s, doubling, capped at a minute.
        assert_eq!(series(0, 0, &[Refused; 8]), [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(series(1, 1, &[Refused; 3]), [1, 2, 4]);
        assert_eq!(series(90, 90, &[Refused]), [60]);
        // A session resets it.
        assert_eq!(
            series(1, 1, &[Refused, Refused, AfterSession, Refused]),
            [1, 2, 1, 1]
        );
        // Dropped before the greeting: past sshd's penalty minimum at once.
        assert_eq!(
            series(1, 1, &[Dropped, Dropped, Dropped, Refused]),
            [15, 30, 60, 60]
        );
        assert_eq!(series(0, 4, &[Refused, Dropped]), [4, 15]);
        assert_eq!(next(Refused, 0, u32::MAX), (60, 60));
    }

    /// sshd's accounting (srclimit.c srclimit_penalise): each failure adds
    /// `penalty` seconds to what is left of the address's penalty; more than
    /// `min` outstanding refuses the address. Attempts take `took` seconds.
    fn locked_out(sleeps: &[u32], took: f64, penalty: f64, min: f64) -> bool {
        let (mut now, mut expiry) = (0.0f64, 0.0f64);
        for &s in sleeps {
            expiry = if expiry > now {
                expiry + penalty
            } else {
                now + penalty
            };
            if expiry - now > min {
                return true;
            }
            now += took + f64::from(s);
        }
        false
    }

    #[test]
    fn refused_keys_never_lock_the_loop_out() {
        for pause in [0, 1, 2, 5] {
            let sleeps = series(pause, pause, &[Retry::Refused; 12]);
            for took in [0.0, 0.3, 1.0] {
                assert!(
                    !locked_out(&sleeps, took, 5.0, 15.0),
                    "-I {pause}, {took} s: {sleeps:?}"
                );
                assert!(!locked_out(&sleeps, took, 1.0, 15.0), "noauth");
            }
        }
        // Without the floor of a second, -I 0 would lock itself out.
        assert!(locked_out(&[0, 1, 2, 4, 8], 0.3, 5.0, 15.0));
    }
}
