//! Where a batch's time goes: the wall time of each phase of a committed
//! batch, added to `chainpay_posting_batch_phase_seconds_total{phase}`
//! beside the batches and their transfers counted, so the time a batch takes
//! can be split by phase (and per batch) from any two scrapes, in production
//! as in the benchmark, which prints it for each transfer phase. A batch
//! that did not commit is not counted (its transfers then run alone).

use std::time::{Duration, Instant};

use crate::metrics::{Metrics, POSTING_PHASES};

/// A batch's phases, in the order they run (and `POSTING_PHASES` names them).
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    /// A pooled connection, `BEGIN`, and the money rules (cached).
    Begin,
    /// Senders locked, parties read.
    Parties,
    /// Idempotency keys claimed.
    Keys,
    /// Price, recipient and sanctions of each transfer (no round trip
    /// unless the sanctions list is loaded).
    Check,
    /// The senders' rolling windows read.
    Windows,
    /// Accounts resolved and locked.
    Accounts,
    /// Each transfer decided, entry built and signed.
    Decide,
    /// The batch's rows gathered, its one write statement, and any AML
    /// reports.
    Write,
    /// The commit (its WAL flush), and, should its answer be lost, asking
    /// whether it took effect.
    Commit,
}

// Each phase is counted under `POSTING_PHASES[phase as usize]`: the variants
// above run in that list's order, and it names every one of them.
const _: () = assert!(Phase::Commit as usize + 1 == POSTING_PHASES.len());

/// One batch's time so far, by phase.
pub struct Phases {
    last: Instant,
    spent: [Duration; POSTING_PHASES.len()],
}

impl Phases {
    pub fn start() -> Self {
        Phases {
            last: Instant::now(),
            spent: [Duration::ZERO; POSTING_PHASES.len()],
        }
    }

    /// Ends `phase`: the time since the last phase ended is its.
    pub fn ended(&mut self, phase: Phase) {
        let now = Instant::now();
        self.spent[phase as usize] += now - self.last;
        self.last = now;
    }

    /// Counts the batch, once committed, with its `transfers`.
    pub fn record(&self, metrics: &Metrics, transfers: usize) {
        metrics.posting_batches.inc();
        metrics.posting_batch_transfers.inc_by(transfers as u64);
        for (label, spent) in POSTING_PHASES.iter().zip(self.spent) {
            metrics
                .posting_phase_seconds
                .with_label_values(&[label])
                .inc_by(spent.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_gets_the_time_since_the_last_one_ended() {
        let mut phases = Phases::start();
        let started = phases.last;
        std::thread::sleep(Duration::from_millis(2));
        phases.ended(Phase::Begin);
        phases.ended(Phase::Parties);
        std::thread::sleep(Duration::from_millis(2));
        phases.ended(Phase::Begin);
        let begin = phases.spent[Phase::Begin as usize];
        assert!(begin >= Duration::from_millis(4), "{begin:?}");
        assert_eq!(phases.spent[Phase::Commit as usize], Duration::ZERO);
        let all: Duration = phases.spent.iter().sum();
        assert_eq!(all, phases.last - started, "nothing counted twice or lost");
    }
}
