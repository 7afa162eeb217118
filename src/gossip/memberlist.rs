//! `Membership` on memberlist 0.8 (TCP + UDP on `ports.serf_lan`).
//!
//! Input: node name, bind address, `NodeMeta`. Output: the pool's members and events.
//! The member table keeps failed and left members (memberlist forgets dead nodes after a
//! while; Consul's `members` still lists them), updated only from memberlist's events.
//! Failed members are joined again in turn every 30 s (Serf's reconnect), so a pool split by
//! a network partition becomes one again when the network heals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memberlist::delegate::{
    CompositeDelegate, EventKind, NodeDelegate, SubscribleEventDelegate, VoidDelegate,
};
use memberlist::net::NetTransportOptions;
use memberlist::proto::{EncryptionAlgorithm, MaybeResolvedAddress, Meta, NodeState, SecretKey, State};
use memberlist::tokio::{TokioNetTransport, TokioSocketAddrResolver, TokioTcp};
use memberlist::{Memberlist, Options};
use smol_str::SmolStr;
use tokio::sync::broadcast;

use super::{GossipError, Member, MemberEvent, MemberStatus, Membership, NodeMeta};
use crate::codec;

type Transport = TokioNetTransport<SmolStr, TokioSocketAddrResolver, TokioTcp>;
type Void = VoidDelegate<SmolStr, SocketAddr>;
type Events = SubscribleEventDelegate<SmolStr, SocketAddr>;
type Delegate = CompositeDelegate<SmolStr, SocketAddr, Void, Void, Events, Void, MetaDelegate, Void>;

/// How long a graceful leave waits for the broadcast to go out.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a member is probed (HashiCorp memberlist `DefaultLANConfig.ProbeInterval`).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a direct probe waits for its ack (`DefaultLANConfig.ProbeTimeout`).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a failed member is tried again (Serf's `reconnect_interval`, Consul's default).
const RECONNECT_INTERVAL: Duration = Duration::from_secs(30);

/// Gives memberlist this agent's meta (replaced once, to announce a leave).
struct MetaDelegate(Arc<Mutex<Meta>>);

impl NodeDelegate for MetaDelegate {
    async fn node_meta(&self, _limit: usize) -> Meta {
        self.0.lock().map(|m| m.clone()).unwrap_or_else(|_| Meta::empty())
    }
}

fn secret_key(key: &[u8]) -> Result<SecretKey, GossipError> {
    let bad = || GossipError::Start(format!("encryption key of {} bytes (want 16, 24 or 32)", key.len()));
    Ok(match key.len() {
        16 => SecretKey::Aes128(key.try_into().map_err(|_| bad())?),
        24 => SecretKey::Aes192(key.try_into().map_err(|_| bad())?),
        32 => SecretKey::Aes256(key.try_into().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

fn encode(meta: &NodeMeta) -> Result<Meta, GossipError> {
    let json = codec::encode_node_meta(meta).map_err(|e| GossipError::Start(e.to_string()))?;
    Meta::try_from(json).map_err(|e| GossipError::Start(format!("node meta: {e}")))
}

/// The memberlist-backed LAN pool.
pub(crate) struct Gossip {
    ml: Memberlist<Transport, Delegate>,
    local_meta: Arc<Mutex<Meta>>,
    events: broadcast::Sender<MemberEvent>,
    table: Arc<Mutex<BTreeMap<String, Member>>>,
    meta: NodeMeta,
    addr: SocketAddr,
    name: String,
}

impl std::fmt::Debug for Gossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip").field("name", &self.name).field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn member(state: &NodeState<SmolStr, SocketAddr>) -> Member {
    let status = match state.state() {
        State::Alive | State::Suspect => MemberStatus::Alive,
        State::Left => MemberStatus::Left,
        _ => MemberStatus::Failed,
    };
    Member {
        name: state.id().to_string(),
        addr: *state.address(),
        status,
        meta: codec::decode_node_meta(state.meta()).ok(),
        protocol: u8::from(state.protocol_version()),
    }
}

impl Gossip {
    /// Starts gossiping as `name` on `bind` (port 0 picks a free port).
    /// With `key` (16, 24 or 32 bytes) every message is encrypted (AES-GCM) and unencrypted
    /// or wrongly keyed ones are refused, so an agent with another key cannot join.
    pub(crate) async fn start(
        name: &str,
        bind: SocketAddr,
        meta: NodeMeta,
        key: Option<&[u8]>,
    ) -> Result<Arc<Self>, GossipError> {
        let local_meta = Arc::new(Mutex::new(encode(&meta)?));
        let mut opts =
            NetTransportOptions::<SmolStr, TokioSocketAddrResolver, TokioTcp>::new(SmolStr::new(name));
        opts.add_bind_address(bind);
        let (events_delegate, subscriber) = Events::unbounded();
        let delegate = CompositeDelegate::new()
            .with_event_delegate(events_delegate)
            .with_node_delegate(MetaDelegate(local_meta.clone()));
        // memberlist-rs's `lan()` probes every 500 ms with a 1 s timeout; HashiCorp's
        // `DefaultLANConfig` (Consul's and Serf's LAN timings) probes every 1 s with a 500 ms
        // timeout. Use HashiCorp's, so failure detection matches Consul's (suspicion lasts
        // 4 * log10(N) probe intervals) instead of being twice as eager.
        let mut options =
            Options::lan().with_probe_interval(PROBE_INTERVAL).with_probe_timeout(PROBE_TIMEOUT);
        if let Some(key) = key {
            options = options
                .with_primary_key(secret_key(key)?)
                .with_encryption_algo(EncryptionAlgorithm::NoPadding)
                .with_gossip_verify_incoming(true)
                .with_gossip_verify_outgoing(true);
        }
        let ml = Memberlist::<Transport, Delegate>::with_delegate(delegate, opts, options)
            .await
            .map_err(|e| GossipError::Start(e.to_string()))?;
        let addr = *ml.advertise_address();
        let (events, _) = broadcast::channel(1024);
        let table = Arc::new(Mutex::new(BTreeMap::new()));
        let local = Member {
            name: name.to_owned(),
            addr,
            status: MemberStatus::Alive,
            meta: Some(meta.clone()),
            protocol: 1,
        };
        if let Ok(mut t) = table.lock() {
            t.insert(name.to_owned(), local);
        }
        let (tx, t) = (events.clone(), table.clone());
        tokio::spawn(async move {
            while let Ok(ev) = subscriber.recv().await {
                let m = member(ev.node_state());
                let event = match ev.kind() {
                    EventKind::Join => MemberEvent::Joined(m.clone()),
                    EventKind::Update => MemberEvent::Updated(m.clone()),
                    EventKind::Leave
                        if m.status == MemberStatus::Left || m.meta.as_ref().is_some_and(|x| x.leaving) =>
                    {
                        MemberEvent::Left(Member { status: MemberStatus::Left, ..m.clone() })
                    }
                    // Leave (not left gracefully) and any kind a later version adds.
                    _ => MemberEvent::Failed(Member { status: MemberStatus::Failed, ..m.clone() }),
                };
                let m = event.member().clone();
                tracing::info!(member = %m.name, addr = %m.addr, status = m.status.as_str(), "gossip member event");
                if let Ok(mut t) = t.lock() {
                    t.insert(m.name.clone(), m);
                }
                let _ = tx.send(event);
            }
        });
        tokio::spawn(reconnect(ml.clone(), table.clone()));
        Ok(Arc::new(Self { ml, local_meta, events, table, meta, addr, name: name.to_owned() }))
    }

    /// Stops gossiping (without a leave: the others will declare this agent failed).
    pub(crate) async fn shutdown(&self) {
        let _ = self.ml.shutdown().await;
    }
}

/// Serf's reconnect: every `RECONNECT_INTERVAL` joins one failed member again (in turn), so a
/// pool split by a network partition becomes one again once the network heals (memberlist
/// itself never contacts a member it declared dead). Left members are not tried.
async fn reconnect(ml: Memberlist<Transport, Delegate>, table: Arc<Mutex<BTreeMap<String, Member>>>) {
    let mut turn = 0usize;
    loop {
        tokio::time::sleep(RECONNECT_INTERVAL).await;
        let failed: Vec<(String, SocketAddr)> = table
            .lock()
            .map(|t| {
                t.values()
                    .filter(|m| m.status == MemberStatus::Failed)
                    .map(|m| (m.name.clone(), m.addr))
                    .collect()
            })
            .unwrap_or_default();
        let Some((name, addr)) = failed.get(turn % failed.len().max(1)).cloned() else { continue };
        turn = turn.wrapping_add(1);
        match ml.join(MaybeResolvedAddress::Resolved(addr)).await {
            Ok(_) => tracing::info!(member = %name, %addr, "reconnected to a failed gossip member"),
            Err(e) => {
                tracing::debug!(member = %name, %addr, error = %e, "reconnect to a failed gossip member")
            }
        }
    }
}

impl Membership for Gossip {
    async fn join(&self, addrs: &[SocketAddr]) -> Result<usize, GossipError> {
        let mut joined = 0;
        let mut last = String::new();
        for a in addrs {
            match self.ml.join(MaybeResolvedAddress::Resolved(*a)).await {
                Ok(_) => joined += 1,
                Err(e) => last = e.to_string(),
            }
        }
        if joined == 0 && !addrs.is_empty() {
            let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            return Err(GossipError::Join { addrs: list.join(", "), msg: last });
        }
        Ok(joined)
    }

    async fn leave(&self) -> Result<(), GossipError> {
        // Announce the intent first, so the others record a leave rather than a failure.
        let leaving = encode(&NodeMeta { leaving: true, ..self.meta.clone() })?;
        if let Ok(mut m) = self.local_meta.lock() {
            *m = leaving;
        }
        self.ml.update_node(LEAVE_TIMEOUT).await.map_err(|e| GossipError::Leave(e.to_string()))?;
        self.ml.leave(LEAVE_TIMEOUT).await.map_err(|e| GossipError::Leave(e.to_string()))?;
        if let Ok(mut t) = self.table.lock()
            && let Some(m) = t.get_mut(&self.name)
        {
            m.status = MemberStatus::Left;
        }
        Ok(())
    }

    async fn members(&self) -> Vec<Member> {
        self.table.lock().map(|t| t.values().cloned().collect()).unwrap_or_default()
    }

    fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.events.subscribe()
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn local_meta(&self) -> &NodeMeta {
        &self.meta
    }
}
