//! The owner side: what this node stores and the operations it runs on keys it owns (the
//! callee of `Apply`). Storage calls run on a blocking thread; writes are stamped with the
//! node's hybrid logical clock; the ownership lock makes a range handoff wait for writes in
//! flight.

use std::sync::Arc;

use dht_proto::v1 as pb;
use dht_store::{Entry, Store, Version};

use crate::convert;
use crate::hlc::Hlc;
use crate::node::Node;
use crate::NodeError;

/// The local data and the locks that guard its ranges.
pub(crate) struct Local {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hlc: Hlc,
    /// Taken shared by every local read or write of owned keys and exclusively whenever the
    /// predecessor changes in a way that hands part of our range away (and when a leave
    /// begins), so a handoff cannot miss a write that was in flight when ownership moved.
    pub(crate) ownership: tokio::sync::RwLock<()>,
    /// Held shared by a key push arriving at this node, exclusively (briefly) by a leave, so a
    /// leave never scans its store while entries are still arriving. Separate from
    /// `ownership` so a long transfer does not hold up client requests.
    pub(crate) leave_gate: tokio::sync::RwLock<()>,
}

impl Local {
    pub(crate) fn new(store: Arc<dyn Store>, hlc: Hlc) -> Local {
        Local {
            store,
            hlc,
            ownership: tokio::sync::RwLock::new(()),
            leave_gate: tokio::sync::RwLock::new(()),
        }
    }

    /// One commit of `entries`; whether each was written. Waits for the store's writer
    /// without holding a blocking thread (`Store::apply_then`).
    pub(crate) async fn apply(&self, entries: Vec<Entry>) -> Result<Vec<bool>, NodeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.store.apply_then(
            &entries,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await
            .map_err(|_| NodeError::Internal("storage write abandoned".into()))?
            .map_err(NodeError::from)
    }

    /// Point reads run in place, not on a blocking thread: a read of one key is a lookup in
    /// memory or in redb's page cache (microseconds), cheaper than the two thread hand-offs of
    /// `spawn_blocking`, which dominated the read path on two cores. Scans, which read whole
    /// pages, still go to a blocking thread.
    pub(crate) async fn get(
        &self,
        id: dht_core::Id,
        key: Vec<u8>,
    ) -> Result<Option<Entry>, NodeError> {
        self.store.get(id, &key).map_err(NodeError::from)
    }

    /// Several point reads (see [`Local::get`]).
    pub(crate) async fn get_many(
        &self,
        keys: Vec<(dht_core::Id, Vec<u8>)>,
    ) -> Result<Vec<Option<Entry>>, NodeError> {
        keys.iter()
            .map(|(id, k)| self.store.get(*id, k).map_err(NodeError::from))
            .collect()
    }

    pub(crate) async fn scan(
        &self,
        from: dht_core::Id,
        to: dht_core::Id,
        after: Option<(dht_core::Id, Vec<u8>)>,
        limit: usize,
    ) -> Result<Vec<Entry>, NodeError> {
        blocking(&self.store, move |s| s.scan(from, to, after, limit)).await
    }

    /// Drops exactly these versions (copies handed to another node), never newer writes.
    pub(crate) async fn remove(
        &self,
        entries: Vec<(dht_core::Id, Vec<u8>, Version)>,
    ) -> Result<usize, NodeError> {
        blocking(&self.store, move |s| s.remove_versions(&entries)).await
    }

    pub(crate) async fn len(&self) -> Result<u64, NodeError> {
        blocking(&self.store, |s| s.len()).await
    }

    /// Stores entries that arrived from another node (a transfer, anti-entropy), advancing
    /// the clock past their versions. Entries further ahead of our clock than the allowed
    /// skew are dropped (and counted in `refused`): no transfer may plant a version that
    /// later writes cannot beat. Returns how many were dropped.
    pub(crate) async fn store_incoming(
        &self,
        mut batch: Vec<Entry>,
        refused: &metrics::Counter,
    ) -> Result<usize, NodeError> {
        let before = batch.len();
        batch.retain(|e| self.hlc.excess_ms(e.record.version) == 0);
        let dropped = before - batch.len();
        if dropped > 0 {
            refused.increment(dropped as u64);
            tracing::warn!(
                entries = dropped,
                "refused transferred entries whose versions are ahead of this node's clock"
            );
        }
        for e in &batch {
            self.hlc.observe(e.record.version);
        }
        self.apply(batch).await?;
        Ok(dropped)
    }
}

/// Runs one storage call on a blocking thread: engines block (a durable one waits for its
/// commit), and async tasks must not.
pub(crate) async fn blocking<T, F>(store: &Arc<dyn Store>, call: F) -> Result<T, NodeError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, dht_store::StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|e| NodeError::Internal(format!("storage task: {e}")))?
        .map_err(NodeError::from)
}

impl Node {
    /// The callee side of `Apply`: replica operations of a coordinator run on this node's
    /// store (one storage commit for all the batch's writes); operations forwarded because
    /// this node owns the key are coordinated here, concurrently.
    pub(crate) async fn apply_local(&self, ops: Vec<pb::Op>) -> Vec<pb::OpResult> {
        let mut results: Vec<pb::OpResult> = vec![pb::OpResult::default(); ops.len()];
        let (replica, owned): (Vec<_>, Vec<_>) =
            ops.into_iter().enumerate().partition(|(_, op)| op.replica);
        let coordinated = futures::future::join_all(owned.into_iter().map(|(i, op)| async move {
            let r = match op_key(&op) {
                Err(e) => Err(e),
                Ok(key) => match self.check_key(key) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        let id = self.space().hash(key);
                        self.coordinate_owned(op, id).await
                    }
                },
            };
            (i, r.unwrap_or_else(|e| e.to_op_result()))
        }));
        let (slots, replica_ops): (Vec<usize>, Vec<pb::Op>) = replica.into_iter().unzip();
        let (coordinated, replica_results) =
            futures::future::join(coordinated, self.apply_replica(replica_ops)).await;
        for (i, r) in coordinated {
            results[i] = r;
        }
        for (i, r) in slots.into_iter().zip(replica_results) {
            results[i] = r;
        }
        results
    }

    /// Replica operations on this node's own store. A write is stored only if it is newer
    /// than the stored version; otherwise the result names the newer version
    /// (REASON_STALE_VERSION), so the coordinator never acknowledges a write that lost. A
    /// read returns the stored entry as it is, tombstones included: the coordinator compares
    /// versions across replicas.
    pub(crate) async fn apply_replica(&self, ops: Vec<pb::Op>) -> Vec<pb::OpResult> {
        let _owned = self.local.ownership.read().await;
        let space = self.space();
        let mut results: Vec<pb::OpResult> = vec![pb::OpResult::default(); ops.len()];
        let mut puts = Vec::new();
        let mut put_slots = Vec::new();
        let mut gets = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            if let Err(e) = self.check_replica_op(&op) {
                results[i] = e.to_op_result();
                continue;
            }
            match op.op {
                Some(pb::op::Op::Put(e)) => {
                    let entry = convert::from_entry(space, e);
                    self.local.hlc.observe(entry.record.version);
                    put_slots.push(i);
                    puts.push(entry);
                }
                Some(pb::op::Op::Get(g)) => gets.push((i, space.hash(&g.key), g.key.to_vec())),
                None => {}
            }
        }
        if !puts.is_empty() {
            match self.local.apply(puts.clone()).await {
                Ok(written) => {
                    // Not written: the stored version is at least as new. The same write
                    // arriving twice is still an acknowledgement.
                    let refused: Vec<(usize, Entry)> = put_slots
                        .into_iter()
                        .zip(puts)
                        .zip(written)
                        .filter(|(_, w)| !w)
                        .map(|(p, _)| p)
                        .collect();
                    if !refused.is_empty() {
                        let keys = refused.iter().map(|(_, e)| (e.id, e.key.clone())).collect();
                        match self.local.get_many(keys).await {
                            Ok(current) => {
                                for ((slot, e), cur) in refused.into_iter().zip(current) {
                                    if let Some(cur) =
                                        cur.filter(|c| c.record.version != e.record.version)
                                    {
                                        results[slot] = NodeError::StaleVersion {
                                            current: cur.record.version,
                                        }
                                        .to_op_result();
                                    }
                                }
                            }
                            Err(err) => {
                                for (slot, _) in refused {
                                    results[slot] = err.to_op_result();
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "storage write failed");
                    for slot in put_slots {
                        results[slot] = e.to_op_result();
                    }
                }
            }
        }
        if !gets.is_empty() {
            let (slots, keys): (Vec<usize>, Vec<_>) =
                gets.into_iter().map(|(i, id, key)| (i, (id, key))).unzip();
            match self.local.get_many(keys).await {
                Ok(found) => {
                    for (i, e) in slots.into_iter().zip(found) {
                        results[i].entry = e.as_ref().map(convert::entry);
                    }
                }
                Err(e) => {
                    for i in slots {
                        results[i] = e.to_op_result();
                    }
                }
            }
        }
        results
    }

    /// What a replica checks before it runs an operation: a valid key and value, a version
    /// within the allowed clock skew, ownership when the coordinator asked for it, and a
    /// node that is not leaving (writes) or serving (reads: a joining node's store is still
    /// filling and must not count as an answer).
    fn check_replica_op(&self, op: &pb::Op) -> Result<(), NodeError> {
        let key = op_key(op)?;
        self.check_key(key)?;
        let id = self.space().hash(key);
        if let Some(pb::op::Op::Put(e)) = &op.op {
            self.check_value(&e.value)?;
            let Some(v) = e.version.as_ref() else {
                return Err(NodeError::InvalidArgument(
                    "a replica write must carry a version".into(),
                ));
            };
            self.check_skew(convert::from_version(Some(v)))?;
            if self.life.has_left() {
                return Err(NodeError::NotServing(crate::NotServing::Leaving));
            }
        } else {
            self.life.check_serving()?;
        }
        if op.check_owner {
            self.check_owns(&self.state(), id)?;
        }
        Ok(())
    }

    /// Refuses a key outside this node's range, naming the range so the caller can tell a
    /// stale routing guess from a moving ring.
    pub(crate) fn check_owns(
        &self,
        st: &dht_core::NodeState,
        id: dht_core::Id,
    ) -> Result<(), NodeError> {
        if st.owns(id) {
            return Ok(());
        }
        let range = st.range_start().map(|s| (s, self.me.id));
        Err(NodeError::NotOwner { id, range })
    }

    /// This node's own stored entry for `key`, tombstones included (`Get` with `local`).
    pub(crate) async fn read_local(&self, key: &[u8]) -> Result<Option<Entry>, NodeError> {
        self.check_key(key)?;
        let id = self.space().hash(key);
        self.local.get(id, key.to_vec()).await
    }
}

/// The key an operation is about.
fn op_key(op: &pb::Op) -> Result<&[u8], NodeError> {
    match &op.op {
        Some(pb::op::Op::Get(g)) => Ok(&g.key),
        Some(pb::op::Op::Put(e)) => Ok(&e.key),
        None => Err(NodeError::InvalidArgument("empty operation".into())),
    }
}
