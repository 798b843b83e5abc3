//! Calls and one-way messages on the virtual network: sending, drawing each message's latency
//! or loss, delivering a request and sending its answer back, and turning a missing answer
//! into a timeout.
//!
//! A call that gets no answer times out `timeout` after it was sent. Since the configuration
//! requires a round trip to fit in the timeout, the fate of every call is known once the
//! request is delivered, so a timeout event is queued only for calls that will miss their
//! reply; that halves the events of a lookup-heavy run.

use dht_core::Peer;

use crate::engine::Time;
use crate::world::{Cont, Event, Ix, Req, Resp, World};

impl World {
    /// Sends a call from `from` to `to`; its answer or timeout comes back to `from` with `cont`.
    pub(crate) fn call(&mut self, from: Ix, to: &Peer, req: Req, cont: Cont) {
        let Some(to) = self.ix_of(to.id) else {
            // A peer nobody ever was: no answer.
            self.q.after(
                self.cfg.timeout,
                Event::Timeout {
                    node: from,
                    peer: from,
                    cont,
                },
            );
            return;
        };
        self.counters.messages += 1;
        let now = self.q.now();
        match self.cfg.net.transit(&mut self.rng) {
            Some(d) => self.q.after(
                d,
                Event::Request {
                    from,
                    to,
                    sent: now,
                    req,
                    cont,
                },
            ),
            None => {
                self.counters.lost += 1;
                self.q.after(
                    self.cfg.timeout,
                    Event::Timeout {
                        node: from,
                        peer: to,
                        cont,
                    },
                )
            }
        }
    }

    /// Sends a one-way message that needs no answer.
    pub(crate) fn send(&mut self, ev_for: impl FnOnce() -> Event) {
        self.counters.messages += 1;
        match self.cfg.net.transit(&mut self.rng) {
            Some(d) => self.q.after(d, ev_for()),
            None => self.counters.lost += 1,
        }
    }

    pub(crate) fn on_request(&mut self, from: Ix, to: Ix, sent: Time, req: Req, cont: Cont) {
        if !self.nodes[to as usize].alive {
            self.time_out(from, to, sent, cont);
            return;
        }
        let st = &self.nodes[to as usize].state;
        let resp = match req {
            Req::FindStep(key) => Resp::Step(st.find_step(key)),
            Req::GetState => Resp::State {
                pred: st.predecessor().cloned(),
                list: st.successors().to_vec(),
            },
            Req::Ping => Resp::Pong,
            Req::ColdProbe { lowest } => self.on_cold_probe(from, to, lowest),
        };
        match self.cfg.net.transit(&mut self.rng) {
            Some(d) => self.q.after(
                d,
                Event::Reply {
                    from: to,
                    to: from,
                    resp,
                    cont,
                },
            ),
            None => {
                self.counters.lost += 1;
                self.time_out(from, to, sent, cont);
            }
        }
    }

    /// The caller of a request sent at `sent` that will never be answered sees a timeout.
    fn time_out(&mut self, from: Ix, to: Ix, sent: Time, cont: Cont) {
        self.q.at(
            sent + self.cfg.timeout,
            Event::Timeout {
                node: from,
                peer: to,
                cont,
            },
        );
    }
}
