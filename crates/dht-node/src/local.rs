//! The owner side: what this node stores and the operations it runs on keys it owns (the
//! callee of `Apply`). Storage calls run on a blocking thread; writes are stamped with the
//! node's hybrid logical clock; the ownership lock makes a range handoff wait for writes in
//! flight.

use std::sync::Arc;

use dht_proto::v1 as pb;
use dht_store::{Entry, Store, Version};

use crate::convert;
use crate::hlc::{now_ms, Hlc};
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

    pub(crate) async fn apply(&self, entries: Vec<Entry>) -> Result<Vec<bool>, NodeError> {
        blocking(&self.store, move |s| s.apply(&entries)).await
    }

    pub(crate) async fn get(
        &self,
        id: dht_core::Id,
        key: Vec<u8>,
    ) -> Result<Option<Entry>, NodeError> {
        blocking(&self.store, move |s| s.get(id, &key)).await
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

    /// Stores entries that arrived from another node (a transfer), advancing the clock past
    /// their versions.
    pub(crate) async fn store_incoming(&self, batch: Vec<Entry>) -> Result<(), NodeError> {
        for e in &batch {
            self.hlc.observe(e.record.version);
        }
        self.apply(batch).await.map(drop)
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
    /// Executes operations on keys this node owns (the owner side of `Apply`). Puts without a
    /// version are stamped here, so one owner's versions of a key always increase.
    pub(crate) async fn apply_local(&self, ops: Vec<pb::Op>) -> Vec<pb::OpResult> {
        let _owned = self.local.ownership.read().await;
        let space = self.space();
        let mut results: Vec<pb::OpResult> = vec![pb::OpResult::default(); ops.len()];
        let mut puts = Vec::new();
        let mut put_slots = Vec::new();
        let mut gets = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let key = match &op.op {
                Some(pb::op::Op::Get(g)) => g.key.clone(),
                Some(pb::op::Op::Put(e)) => e.key.clone(),
                None => {
                    results[i] =
                        NodeError::InvalidArgument("empty operation".into()).to_op_result();
                    continue;
                }
            };
            if let Err(e) = self.check_key(&key) {
                results[i] = e.to_op_result();
                continue;
            }
            let id = space.hash(&key);
            if let Err(e) = self.life.check_serving() {
                results[i] = e.to_op_result();
                continue;
            }
            {
                let st = self.state();
                if !st.owns(id) {
                    let range = st.range_start().map(|s| (s, self.me.id));
                    results[i] = NodeError::NotOwner { id, range }.to_op_result();
                    continue;
                }
            }
            match op.op {
                Some(pb::op::Op::Put(e)) => {
                    if let Err(err) = self.check_value(&e.value) {
                        results[i] = err.to_op_result();
                        continue;
                    }
                    let stamp = e.version.is_none();
                    let mut entry = convert::from_entry(space, e);
                    if stamp {
                        entry.record.version = self.local.hlc.next();
                    } else {
                        self.local.hlc.observe(entry.record.version);
                    }
                    put_slots.push(i);
                    puts.push(entry);
                }
                Some(pb::op::Op::Get(_)) => gets.push((i, id, key.to_vec())),
                None => {}
            }
        }
        if !puts.is_empty() {
            match self.local.apply(puts.clone()).await {
                Ok(_) => {
                    for (slot, e) in put_slots.into_iter().zip(&puts) {
                        results[slot].entry = Some(convert::entry(e));
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
        let now = now_ms();
        for (i, id, key) in gets {
            match self.local.get(id, key).await {
                Ok(Some(e)) if e.record.is_live(now) => results[i].entry = Some(convert::entry(&e)),
                Ok(_) => {}
                Err(e) => results[i] = e.to_op_result(),
            }
        }
        results
    }
}
