//! The event queue: virtual time and a total order on events.
//!
//! Events are ordered by (time, sequence number), the sequence number being the order in which
//! they were scheduled. Two events at the same microsecond therefore always run in the same
//! order, which is what makes a run replay bit for bit from its seed. Time only moves forward:
//! popping an event jumps the clock to it (STYLE.md §14, "simulate by jumping to the next
//! wakeup").

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Virtual time in microseconds.
pub type Time = u64;

struct Entry<E> {
    at: Time,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so that the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A discrete-event queue with its own clock.
pub struct Queue<E> {
    heap: BinaryHeap<Entry<E>>,
    now: Time,
    seq: u64,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            now: 0,
            seq: 0,
        }
    }
}

impl<E> Queue<E> {
    pub fn now(&self) -> Time {
        self.now
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Schedules `event` at `at`; a time in the past means "now".
    pub fn at(&mut self, at: Time, event: E) {
        self.seq += 1;
        self.heap.push(Entry {
            at: at.max(self.now),
            seq: self.seq,
            event,
        });
    }

    /// Schedules `event` `delay` microseconds from now.
    pub fn after(&mut self, delay: Time, event: E) {
        self.at(self.now.saturating_add(delay), event);
    }

    /// The time of the next event, if any.
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|e| e.at)
    }

    /// Pops the next event whose time is at most `until`, moving the clock to it.
    pub fn pop_until(&mut self, until: Time) -> Option<(Time, E)> {
        if self.heap.peek()?.at > until {
            return None;
        }
        let e = self.heap.pop()?;
        self.now = e.at;
        Some((e.at, e.event))
    }

    /// Moves the clock forward to `t` (after the events before it have run).
    pub fn advance_to(&mut self, t: Time) {
        self.now = self.now.max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pop_by_time_then_by_scheduling_order() {
        let mut q = Queue::default();
        q.at(20, "c");
        q.at(10, "a");
        q.at(20, "d");
        q.at(10, "b");
        let mut got = Vec::new();
        while let Some((t, e)) = q.pop_until(u64::MAX) {
            got.push((t, e));
        }
        assert_eq!(got, vec![(10, "a"), (10, "b"), (20, "c"), (20, "d")]);
        assert_eq!(q.now(), 20);
    }

    #[test]
    fn the_clock_never_goes_back() {
        let mut q = Queue::default();
        q.at(50, 1);
        assert_eq!(q.pop_until(40), None);
        assert_eq!(q.pop_until(50), Some((50, 1)));
        q.at(10, 2);
        assert_eq!(q.pop_until(u64::MAX), Some((50, 2)));
        q.after(5, 3);
        assert_eq!(q.peek_time(), Some(55));
    }
}
