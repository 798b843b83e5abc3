//! Channels to peers: one multiplexed HTTP/2 channel per peer address, created lazily and
//! shared by every task. TCP_NODELAY is on (without it small calls stall ~40 ms), and every
//! call carries the node's timeout, which is also how failures are detected.
//!
//! All requests to one peer go through [`PeerPool::client`], so a per-peer queue that
//! coalesces them into one `Apply` batch can be slotted in here without touching callers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use dht_core::Peer;
use dht_proto::v1::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

use crate::NodeError;

pub struct PeerPool {
    timeout: Duration,
    /// Held only to look up or insert a channel. Keyed by (address, bulk).
    channels: Mutex<HashMap<(String, bool), Channel>>,
}

impl PeerPool {
    pub fn new(timeout: Duration) -> PeerPool {
        PeerPool {
            timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The channel to `addr`. A `bulk` channel (key transfers on join and leave) has no
    /// per-request deadline, since moving a million keys takes longer than any sensible RPC
    /// timeout; HTTP/2 keep-alive pings still detect a peer that died mid-transfer.
    pub fn channel(&self, addr: &str, bulk: bool) -> Result<Channel, NodeError> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&(addr.to_string(), bulk)) {
            return Ok(c.clone());
        }
        let mut ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| NodeError::InvalidArgument(format!("bad peer address {addr:?}: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(self.timeout)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(self.timeout.max(Duration::from_secs(1)))
            .keep_alive_while_idle(true);
        if !bulk {
            ep = ep.timeout(self.timeout);
        }
        let ch = ep.connect_lazy();
        map.insert((addr.to_string(), bulk), ch.clone());
        Ok(ch)
    }

    pub fn client(&self, peer: &Peer) -> Result<PeerClient<Channel>, NodeError> {
        self.client_at(&peer.addr)
    }

    /// A client for key transfers: no per-request deadline (see [`PeerPool::channel`]).
    pub fn bulk_client(&self, peer: &Peer) -> Result<PeerClient<Channel>, NodeError> {
        Ok(PeerClient::new(self.channel(&peer.addr, true)?)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024))
    }

    pub fn client_at(&self, addr: &str) -> Result<PeerClient<Channel>, NodeError> {
        Ok(PeerClient::new(self.channel(addr, false)?)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024))
    }

    /// Drops the channel of a peer presumed dead, so a restarted process gets a fresh one.
    pub fn forget(&self, addr: &str) {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(addr.to_string(), false));
        map.remove(&(addr.to_string(), true));
    }
}

/// Wraps a failed peer call with the peer's address.
pub fn peer_err(addr: &str) -> impl FnOnce(tonic::Status) -> NodeError + '_ {
    move |status| NodeError::Peer {
        addr: addr.to_string(),
        status,
    }
}
