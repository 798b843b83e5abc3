//! A bounded record of the last events, printed with the first invariant violation.
//!
//! Keeping every event of a 100,000-node run would cost gigabytes; the few hundred before a
//! violation are what a reader needs, together with the seed that replays the whole run.

use std::collections::VecDeque;
use std::fmt::Write;

use crate::engine::Time;

#[derive(Clone, Debug)]
pub struct TraceRec {
    pub at: Time,
    pub what: &'static str,
    pub a: String,
    pub b: String,
}

#[derive(Default)]
pub struct Trace {
    cap: usize,
    recs: VecDeque<TraceRec>,
}

impl Trace {
    pub fn new(cap: usize) -> Trace {
        Trace {
            cap,
            recs: VecDeque::with_capacity(cap.min(4096)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cap > 0
    }

    pub fn push(&mut self, rec: TraceRec) {
        if self.cap == 0 {
            return;
        }
        if self.recs.len() == self.cap {
            self.recs.pop_front();
        }
        self.recs.push_back(rec);
    }

    /// The records, oldest first, one per line: `t=<ms> <what> <a> <b>`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for r in &self.recs {
            let _ = writeln!(
                s,
                "  t={:.3}ms {} {} {}",
                r.at as f64 / 1000.0,
                r.what,
                r.a,
                r.b
            );
        }
        s
    }
}
