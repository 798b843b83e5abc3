//! Coalescing of requests to one peer (docs/architecture.md, "Performance").
//!
//! On two cores the CPU cost per RPC, not the network, bounds throughput. Every operation this
//! node forwards to an owner goes through that owner's queue; one sender task per peer takes
//! whatever has accumulated and sends it as a single `Apply` batch, with a few batches in
//! flight at once. Under load batches grow by themselves; with one request outstanding it is
//! sent at once, so latency does not suffer when idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dht_core::Peer;
use dht_proto::v1 as pb;
use metrics::Histogram;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::NotServing;
use crate::peers::send_apply;
use crate::pool::PeerPool;
use crate::tasks::Tasks;
use crate::NodeError;

/// Most operations in one `Apply`.
const MAX_BATCH: usize = 512;
/// Batches in flight to one peer.
const IN_FLIGHT: usize = 4;

type Reply = oneshot::Sender<Result<pb::OpResult, NodeError>>;

pub(crate) struct Coalescer {
    pool: Arc<PeerPool>,
    /// Senders and their batches run as the node's tracked tasks.
    tasks: Tasks,
    /// `dht_apply_batch_size`: how well coalescing works is the batch sizes it achieves.
    batch_size: Histogram,
    /// Held only to find or create a peer's queue.
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<(pb::Op, Reply)>>>,
}

impl Coalescer {
    pub(crate) fn new(pool: Arc<PeerPool>, tasks: Tasks, batch_size: Histogram) -> Coalescer {
        Coalescer {
            pool,
            tasks,
            batch_size,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `op` on `owner` as part of the next batch to it.
    pub(crate) async fn apply(&self, owner: &Peer, op: pb::Op) -> Result<pb::OpResult, NodeError> {
        let (tx, rx) = oneshot::channel();
        let mut item = Some((op, tx));
        for _ in 0..2 {
            let q = self.queue(owner);
            match q.send(item.take().expect("item present")) {
                Ok(()) => break,
                // The sender task ended (peer forgotten or shutting down): make a new one once.
                Err(mpsc::error::SendError(back)) => {
                    self.forget(&owner.addr);
                    item = Some(back);
                }
            }
        }
        if item.is_some() {
            return Err(NodeError::NotServing(NotServing::ShuttingDown));
        }
        rx.await
            .map_err(|_| NodeError::NotServing(NotServing::ShuttingDown))?
    }

    /// Drops a peer's queue (it is presumed dead); pending requests still finish.
    pub(crate) fn forget(&self, addr: &str) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(addr);
    }

    fn queue(&self, owner: &Peer) -> mpsc::UnboundedSender<(pb::Op, Reply)> {
        let mut map = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = map.get(&*owner.addr) {
            if !q.is_closed() {
                return q.clone();
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let span = tracing::debug_span!("task", name = "coalesce", peer = %owner.addr);
        self.tasks.spawn(
            "coalesce",
            span,
            sender(
                self.pool.clone(),
                owner.clone(),
                rx,
                self.tasks.clone(),
                self.batch_size.clone(),
            ),
        );
        map.insert(owner.addr.to_string(), tx.clone());
        tx
    }
}

/// One peer's sender: batches what is queued and sends it, up to [`IN_FLIGHT`] at a time.
async fn sender(
    pool: Arc<PeerPool>,
    peer: Peer,
    mut rx: mpsc::UnboundedReceiver<(pb::Op, Reply)>,
    tasks: Tasks,
    batch_size: Histogram,
) -> Result<(), NodeError> {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let stop = tasks.token().clone();
    loop {
        // Wait for a free slot first, so requests pile up into the next batch meanwhile.
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            item = rx.recv() => match item { Some(i) => i, None => break },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(i) => batch.push(i),
                Err(_) => break,
            }
        }
        batch_size.record(batch.len() as f64);
        let pool = pool.clone();
        let peer = peer.clone();
        let span = tracing::debug_span!("task", name = "apply-batch", peer = %peer.addr);
        tasks.spawn("apply-batch", span, async move {
            let (ops, replies): (Vec<pb::Op>, Vec<Reply>) = batch.into_iter().unzip();
            match send_apply(&pool, &peer, ops).await {
                Ok(results) => {
                    for (r, reply) in results.into_iter().zip(replies) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Err(NodeError::Peer { addr, status }) => {
                    for reply in replies {
                        let _ = reply.send(Err(NodeError::Peer {
                            addr: addr.clone(),
                            status: status.clone(),
                        }));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(NodeError::Internal(msg.clone())));
                    }
                }
            }
            drop(permit);
            Ok(())
        });
    }
    Ok(())
}
