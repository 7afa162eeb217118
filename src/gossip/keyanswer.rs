//! The keyring fan-out's IO on memberlist (`gossip::keyquery` has the messages and the
//! tally): sending a message to many members at once, and the task that answers other
//! agents' queries and relays their replies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use memberlist::Memberlist;
use tokio::sync::mpsc;

use super::keyquery::{KeyringMessage, KeyringReply, PendingQueries, query_timeout};
use super::keyring::LanKeyring;
use super::memberlist::{Delegate, Table, Transport, alive};
use crate::codec;

/// Sends `msg` to every address over reliable user messages, all at once, giving up after
/// `timeout` (a member that does not take it counts as not replied).
pub(super) async fn send_all(
    ml: &Memberlist<Transport, Delegate>,
    msg: &KeyringMessage,
    to: impl Iterator<Item = SocketAddr>,
    timeout: Duration,
) {
    let bytes = match codec::Format::KeyringMessage.encode(msg) {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => return tracing::error!(error = %e, "keyring message not encoded"),
    };
    let mut sends = tokio::task::JoinSet::new();
    for addr in to {
        let (ml, bytes) = (ml.clone(), bytes.clone());
        sends.spawn(async move {
            if let Err(e) = ml.send_reliable(&addr, bytes).await {
                tracing::warn!(%addr, error = %e, "keyring message not sent");
            }
        });
    }
    let _ = tokio::time::timeout(timeout, sends.join_all()).await;
}

/// Answers the keyring messages other agents send this one.
pub(super) struct KeyringAnswerer {
    ml: Memberlist<Transport, Delegate>,
    keyring: Arc<LanKeyring>,
    pending: Arc<PendingQueries>,
    table: Table,
    name: String,
}

impl KeyringAnswerer {
    /// Starts answering the messages of `inbox`; returns the table the replies to this agent's
    /// own queries are delivered to.
    pub(super) fn spawn(
        ml: &Memberlist<Transport, Delegate>,
        keyring: &Arc<LanKeyring>,
        table: &Table,
        name: &str,
        inbox: mpsc::Receiver<Vec<u8>>,
    ) -> Arc<PendingQueries> {
        let pending = Arc::new(PendingQueries::default());
        let this = Self {
            ml: ml.clone(),
            keyring: keyring.clone(),
            pending: pending.clone(),
            table: table.clone(),
            name: name.to_owned(),
        };
        tokio::spawn(this.serve(inbox));
        pending
    }

    /// Takes messages from the delegate's inbox until gossip stops.
    async fn serve(self, mut inbox: mpsc::Receiver<Vec<u8>>) {
        let this = Arc::new(self);
        while let Some(bytes) = inbox.recv().await {
            match codec::Format::KeyringMessage.decode::<KeyringMessage>(&bytes) {
                Ok(KeyringMessage::Reply(reply)) => this.pending.deliver(reply),
                Ok(msg) => {
                    tokio::spawn(this.clone().answer(msg));
                }
                Err(e) => tracing::debug!(error = %e, "undecodable gossip user message"),
            }
        }
    }

    /// Applies a query and replies to its origin (also through `relay` other members), or
    /// forwards a relayed reply. Only alive members are answered or forwarded to.
    async fn answer(self: Arc<Self>, msg: KeyringMessage) {
        let members = alive(&self.table);
        let is_member = |addr: &SocketAddr| members.values().any(|a| a == addr);
        let timeout = query_timeout(members.len());
        match msg {
            KeyringMessage::Query { id, origin, op, key, relay } if is_member(&origin) => {
                let result = self.keyring.apply(op, &key).map_err(|e| {
                    tracing::error!(op = ?op, error = %e, "keyring operation failed");
                    e.to_string()
                });
                let reply = KeyringReply { id, node: self.name.clone(), result };
                let relays = relay_through(&members, &self.name, origin, relay);
                let relayed = KeyringMessage::Relay { to: origin, reply: reply.clone() };
                send_all(&self.ml, &KeyringMessage::Reply(reply), std::iter::once(origin), timeout).await;
                send_all(&self.ml, &relayed, relays.into_iter(), timeout).await;
            }
            KeyringMessage::Relay { to, reply } if is_member(&to) => {
                send_all(&self.ml, &KeyringMessage::Reply(reply), std::iter::once(to), timeout).await;
            }
            // Not the message itself: a query carries a key.
            _ => tracing::warn!("keyring message from or to a non-member dropped"),
        }
    }
}

/// Up to `count` members chosen at random to relay a reply: neither this agent nor the origin.
fn relay_through(
    members: &BTreeMap<String, SocketAddr>,
    me: &str,
    origin: SocketAddr,
    count: u8,
) -> Vec<SocketAddr> {
    use rand::seq::SliceRandom as _;
    let mut others: Vec<SocketAddr> =
        members.iter().filter(|(n, a)| n.as_str() != me && **a != origin).map(|(_, a)| *a).collect();
    others.shuffle(&mut rand::rng());
    others.truncate(usize::from(count));
    others
}
