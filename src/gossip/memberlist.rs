//! `Membership` on memberlist 0.8 (TCP + UDP on `ports.serf_lan`).
//!
//! Input: node name, bind address, `NodeMeta`. Output: the pool's members and events.
//! The member table keeps failed and left members (memberlist forgets dead nodes after a
//! while; Consul's `members` still lists them), updated only from memberlist's events.
//! Failed members are joined again in turn every 30 s (Serf's reconnect), so a pool split by
//! a network partition becomes one again when the network heals.
//!
//! The keyring's fan-out (`gossip::keyquery`) travels as memberlist user messages: the node
//! delegate hands each to a bounded inbox (dropped when full: a flood cannot grow memory) and
//! one task answers them; queries are sent over reliable (TCP) user messages, encrypted with
//! the ring's primary key like all gossip. User events (`gossip::user_event`) travel the same
//! way, tagged with a leading `E`, into their own bounded inbox.
//!
//! Probe acks carry this agent's Vivaldi coordinate (the ping delegate's payload), and every
//! completed probe folds the peer's coordinate and the measured round trip into it
//! (`gossip::vivaldi`), as Serf does.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memberlist::delegate::{
    CompositeDelegate, EventKind, EventSubscriber, NodeDelegate, PingDelegate, SubscribleEventDelegate,
    VoidDelegate,
};
use memberlist::net::NetTransportOptions;
use memberlist::proto::{EncryptionAlgorithm, MaybeResolvedAddress, Meta, NodeState, State};
use memberlist::tokio::{TokioNetTransport, TokioSocketAddrResolver, TokioTcp};
use memberlist::{Memberlist, Options};
use smol_str::SmolStr;
use tokio::sync::{broadcast, mpsc};

use super::keyanswer::{KeyringAnswerer, send_all};
use super::keyquery::{KeyringMessage, KeyringReport, PendingQueries, query_timeout};
use super::keyring::{self, GossipKeys, KeyOp, KeyringError, LanKeyring, Verify};
use super::pool::{Pool, PoolGuard};
use super::rollout::{Rollout, RolloutOptions};
use super::user_event::{MESSAGE_TAG, UserEvent, UserEvents};
use super::vivaldi::Vivaldi;
use super::{GossipError, Member, MemberEvent, MemberStatus, Membership, NodeMeta};
use crate::catalog::operator::Coordinate;
use crate::codec;
use crate::snapshot::SnapshotHandle;

pub(super) type Transport = Rollout<TokioNetTransport<SmolStr, TokioSocketAddrResolver, TokioTcp>>;
type Void = VoidDelegate<SmolStr, SocketAddr>;
type Events = SubscribleEventDelegate<SmolStr, SocketAddr>;
pub(super) type Delegate =
    CompositeDelegate<SmolStr, SocketAddr, Void, Void, Events, PoolGuard, MetaDelegate, CoordDelegate>;

/// How long a graceful leave waits for the broadcast to go out.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a member is probed (HashiCorp memberlist `DefaultLANConfig.ProbeInterval`).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a direct probe waits for its ack (`DefaultLANConfig.ProbeTimeout`).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a failed member is tried again (Serf's `reconnect_interval`, Consul's default).
const RECONNECT_INTERVAL: Duration = Duration::from_secs(30);
/// Keyring messages waiting to be answered; more are dropped.
const INBOX: usize = 256;

/// How long sending a user event to every member may take.
const EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Gives memberlist this agent's meta (replaced once, to announce a leave) and takes the user
/// messages: keyring queries and replies to the keyring task, user events to theirs.
pub(super) struct MetaDelegate {
    meta: Arc<Mutex<Meta>>,
    inbox: mpsc::Sender<Vec<u8>>,
    events: mpsc::Sender<Vec<u8>>,
}

/// Carries this agent's coordinate in probe acks, folds each probe's round trip into it and
/// keeps the coordinate each peer's ack carried (Serf's coordinate cache).
pub(super) struct CoordDelegate {
    vivaldi: Arc<Mutex<Vivaldi>>,
    peers: Peers,
}

/// The peers' latest coordinates, by member name.
type Peers = Arc<Mutex<BTreeMap<String, Coordinate>>>;

impl PingDelegate for CoordDelegate {
    type Id = SmolStr;
    type Address = SocketAddr;

    async fn ack_payload(&self) -> bytes::Bytes {
        let coord = self.vivaldi.lock().map(|v| v.coordinate()).ok();
        coord
            .and_then(|c| codec::Format::GossipPayload.encode(&c).ok())
            .map(bytes::Bytes::from)
            .unwrap_or_default()
    }

    async fn notify_ping_complete(
        &self,
        node: Arc<NodeState<SmolStr, SocketAddr>>,
        rtt: Duration,
        payload: bytes::Bytes,
    ) {
        // An empty payload: a peer that does not send coordinates.
        let Ok(other) = codec::Format::GossipPayload.decode::<Coordinate>(&payload) else { return };
        if let Ok(mut v) = self.vivaldi.lock() {
            v.observe(node.id(), &other, rtt);
        }
        if let Ok(mut peers) = self.peers.lock() {
            peers.insert(node.id().to_string(), other);
        }
    }
}

impl NodeDelegate for MetaDelegate {
    async fn node_meta(&self, _limit: usize) -> Meta {
        self.meta.lock().map(|m| m.clone()).unwrap_or_else(|_| Meta::empty())
    }

    async fn notify_message(&self, msg: Cow<'_, [u8]>) {
        if let Some(event) = msg.strip_prefix(&[MESSAGE_TAG]) {
            if self.events.try_send(event.to_vec()).is_err() {
                tracing::warn!("user event dropped: inbox full");
            }
        } else if self.inbox.try_send(msg.into_owned()).is_err() {
            tracing::warn!("keyring message dropped: inbox full");
        }
    }
}

fn encode(meta: &NodeMeta) -> Result<Meta, GossipError> {
    let json = codec::encode_node_meta(meta).map_err(|e| GossipError::Start(e.to_string()))?;
    Meta::try_from(json).map_err(|e| GossipError::Start(format!("node meta: {e}")))
}

/// A memberlist-backed pool (LAN or WAN, `gossip::pool`).
pub(crate) struct Gossip {
    peers: Peers,
    ml: Memberlist<Transport, Delegate>,
    local_meta: Arc<Mutex<Meta>>,
    events: broadcast::Sender<MemberEvent>,
    table: Table,
    meta: NodeMeta,
    addr: SocketAddr,
    name: String,
    keyring: Arc<LanKeyring>,
    pending: Arc<PendingQueries>,
    user_events: Arc<UserEvents>,
    vivaldi: Arc<Mutex<Vivaldi>>,
}

/// The member table, by node name.
pub(super) type Table = Arc<Mutex<BTreeMap<String, Member>>>;

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
    /// Starts gossiping in `pool` as `name` on `bind` (port 0 picks a free port), telling the
    /// others to dial `advertise` (default: the bound address).
    /// With keys (16, 24 or 32 bytes each) every message is encrypted (AES-GCM) with the first
    /// and unencrypted or wrongly keyed ones are refused, so an agent with no key on this
    /// agent's ring cannot join. User events are kept when they target this node as the
    /// catalog in `snapshots` shows it.
    pub(crate) async fn start(
        name: &str,
        bind: SocketAddr,
        meta: NodeMeta,
        keys: GossipKeys,
        snapshots: Arc<SnapshotHandle>,
        pool: Pool,
        advertise: Option<SocketAddr>,
    ) -> Result<Arc<Self>, GossipError> {
        let local_meta = Arc::new(Mutex::new(encode(&meta)?));
        let mut opts =
            NetTransportOptions::<SmolStr, TokioSocketAddrResolver, TokioTcp>::new(SmolStr::new(name));
        opts.add_bind_address(bind);
        if let Some(advertise) = advertise {
            opts = opts.with_advertise_address(advertise);
        }
        let peers = Peers::default();
        let (events_delegate, subscriber) = Events::unbounded();
        let (inbox, inbox_rx) = mpsc::channel(INBOX);
        let (user_inbox, user_inbox_rx) = mpsc::channel(INBOX);
        let vivaldi = Arc::new(Mutex::new(Vivaldi::default()));
        let delegate = CompositeDelegate::new()
            .with_event_delegate(events_delegate)
            .with_node_delegate(MetaDelegate { meta: local_meta.clone(), inbox, events: user_inbox })
            .with_merge_delegate(PoolGuard { pool, dc: meta.dc.clone() })
            .with_ping_delegate(CoordDelegate { vivaldi: vivaldi.clone(), peers: peers.clone() });
        // memberlist-rs's `lan()` probes every 500 ms with a 1 s timeout; HashiCorp's
        // `DefaultLANConfig` (Consul's and Serf's LAN timings) probes every 1 s with a 500 ms
        // timeout. Use HashiCorp's, so failure detection matches Consul's (suspicion lasts
        // 4 * log10(N) probe intervals) instead of being twice as eager.
        // The WAN pool takes memberlist-rs's `wan()`, which is HashiCorp's `DefaultWANConfig`.
        let options = match pool {
            Pool::Lan => Options::lan().with_probe_interval(PROBE_INTERVAL).with_probe_timeout(PROBE_TIMEOUT),
            Pool::Wan => Options::wan(),
        };
        let secrets: Vec<_> = keys.keys.iter().map(|k| keyring::secret_key(k)).collect::<Result<_, _>>()?;
        let opts =
            RolloutOptions { inner: opts, plain_outgoing: !secrets.is_empty() && !keys.verify.outgoing };
        let options = encrypted(options, &secrets, keys.verify);
        let ml = Memberlist::<Transport, Delegate>::with_delegate(delegate, opts, options)
            .await
            .map_err(|e| GossipError::Start(e.to_string()))?;
        let keyring = Arc::new(ring(&ml, &secrets, keys)?);
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
        tokio::spawn(forward_member_events(subscriber, events.clone(), table.clone()));
        tokio::spawn(reconnect(ml.clone(), table.clone()));
        let pending = KeyringAnswerer::spawn(&ml, &keyring, &table, name, inbox_rx);
        let user_events = Arc::new(UserEvents::default());
        tokio::spawn(receive_events(user_inbox_rx, user_events.clone(), name.to_owned(), snapshots));
        Ok(Arc::new(Self {
            peers,
            ml,
            local_meta,
            events,
            table,
            meta,
            addr,
            name: name.to_owned(),
            keyring,
            pending,
            user_events,
            vivaldi,
        }))
    }

    /// Every member's latest coordinate in this pool (this agent's included), by name.
    pub(crate) fn coordinates(&self) -> BTreeMap<String, Coordinate> {
        let mut all = self.peers.lock().map(|p| p.clone()).unwrap_or_default();
        all.insert(self.name.clone(), self.coordinate());
        all
    }

    /// This agent's network coordinate (`gossip::vivaldi`).
    pub(crate) fn coordinate(&self) -> Coordinate {
        self.vivaldi.lock().map(|v| v.coordinate()).unwrap_or_else(|_| super::vivaldi::origin())
    }

    /// The user events this agent kept, and its Lamport clock.
    pub(crate) fn user_events(&self) -> &Arc<UserEvents> {
        &self.user_events
    }

    /// Fires `event`: stamps it with the event clock, keeps it here if it targets this node
    /// (`wanted_here`), and sends it to every other alive member (see `gossip::user_event`).
    pub(crate) async fn fire_event(&self, mut event: UserEvent, wanted_here: impl Fn(&UserEvent) -> bool) {
        event.ltime = self.user_events.next_time();
        let wanted = wanted_here(&event);
        let mut bytes = vec![MESSAGE_TAG];
        match codec::Format::GossipPayload.encode(&event) {
            Ok(b) => bytes.extend(b),
            Err(e) => return tracing::error!(error = %e, "user event not encoded"),
        }
        let bytes = bytes::Bytes::from(bytes);
        let mut sends = tokio::task::JoinSet::new();
        for (_, addr) in alive(&self.table).into_iter().filter(|(n, _)| *n != self.name) {
            let (ml, bytes) = (self.ml.clone(), bytes.clone());
            sends.spawn(async move {
                if let Err(e) = ml.send_reliable(&addr, bytes).await {
                    tracing::warn!(%addr, error = %e, "user event not sent");
                }
            });
        }
        self.user_events.receive(event, wanted);
        let _ = tokio::time::timeout(EVENT_SEND_TIMEOUT, sends.join_all()).await;
    }

    /// This agent's gossip keyring (the server RPC's handshake is keyed by its `keys`).
    #[expect(dead_code, reason = "the RPC handshake keyed by the keyring (issue 19) reads it once merged")]
    pub(crate) fn keyring(&self) -> &Arc<LanKeyring> {
        &self.keyring
    }

    /// Applies a keyring operation to every alive member of the pool (this agent included)
    /// and reports per node (`gossip::keyquery`). `key` is base64 (ignored for a list);
    /// `relay` (0..=5) members also carry each reply. Fails when gossip is not encrypted, or
    /// when the key is not base64 (before anything is sent).
    pub(crate) async fn keyring_operation(
        &self,
        op: KeyOp,
        key: &str,
        relay: u8,
    ) -> Result<KeyringReport, KeyringError> {
        if !self.keyring.enabled() {
            tracing::error!("Keyring is empty (encryption not enabled)");
            return Err(KeyringError::Disabled);
        }
        if op.takes_key() {
            keyring::decode_base64(key)?;
        }
        let others: BTreeMap<String, SocketAddr> =
            alive(&self.table).into_iter().filter(|(n, _)| *n != self.name).collect();
        let num_nodes = others.len() + 1;
        let timeout = query_timeout(num_nodes);
        let deadline = tokio::time::Instant::now() + timeout;
        let (id, mut rx) = self.pending.open();
        let query = KeyringMessage::Query { id, origin: self.addr, op, key: key.to_owned(), relay };
        send_all(&self.ml, &query, others.values().copied(), timeout).await;
        let mut replies = BTreeMap::new();
        let local = self.keyring.apply(op, key).map_err(|e| e.to_string());
        replies.insert(self.name.clone(), local);
        while replies.len() < num_nodes {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) if others.contains_key(&r.node) => {
                    replies.entry(r.node).or_insert(r.result);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.pending.close(id);
        Ok(KeyringReport::tally(num_nodes, &replies))
    }

    /// Stops gossiping (without a leave: the others will declare this agent failed).
    pub(crate) async fn shutdown(&self) {
        let _ = self.ml.shutdown().await;
    }
}

/// `options` encrypting with the first of `secrets` and refusing unencrypted messages unless
/// `verify.incoming` is off (none: no encryption). memberlist's `gossip_verify_outgoing` stays
/// true even when `verify.outgoing` is off, because memberlist decrypts only with it; the
/// `Rollout` transport keeps outgoing gossip plain instead (see `gossip::rollout`).
fn encrypted(options: Options, secrets: &[memberlist::proto::SecretKey], verify: Verify) -> Options {
    match secrets.first() {
        Some(primary) => options
            .with_primary_key(*primary)
            .with_encryption_algo(EncryptionAlgorithm::NoPadding)
            .with_gossip_verify_incoming(verify.incoming)
            .with_gossip_verify_outgoing(true),
        None => options,
    }
}

/// The keyring over memberlist's ring, with the other `secrets` installed beside the primary.
fn ring(
    ml: &Memberlist<Transport, Delegate>,
    secrets: &[memberlist::proto::SecretKey],
    keys: GossipKeys,
) -> Result<LanKeyring, GossipError> {
    let ring = ml.keyring().cloned();
    if let Some(ring) = &ring {
        secrets.iter().skip(1).for_each(|k| ring.insert(*k));
    }
    Ok(LanKeyring::new(ring, keys.file, keys.view)?)
}

/// The alive members' gossip addresses, by name (this agent included).
pub(super) fn alive(table: &Table) -> BTreeMap<String, SocketAddr> {
    table
        .lock()
        .map(|t| {
            t.values().filter(|m| m.status == MemberStatus::Alive).map(|m| (m.name.clone(), m.addr)).collect()
        })
        .unwrap_or_default()
}

/// Turns memberlist's events into `MemberEvent`s, recorded in the member table `t` and sent
/// to `tx`'s subscribers.
async fn forward_member_events(
    subscriber: EventSubscriber<SmolStr, SocketAddr>,
    tx: broadcast::Sender<MemberEvent>,
    t: Table,
) {
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
        event.count();
        let m = event.member().clone();
        tracing::info!(member = %m.name, addr = %m.addr, status = m.status.as_str(), "gossip member event");
        if let Ok(mut t) = t.lock() {
            t.insert(m.name.clone(), m);
        }
        let _ = tx.send(event);
    }
}

/// Keeps the user events other agents send this one that target this node.
async fn receive_events(
    mut inbox: mpsc::Receiver<Vec<u8>>,
    events: Arc<UserEvents>,
    name: String,
    snapshots: Arc<SnapshotHandle>,
) {
    while let Some(bytes) = inbox.recv().await {
        match codec::Format::GossipPayload.decode::<UserEvent>(&bytes) {
            Ok(ev) => {
                let wanted = ev.targets(&name, &snapshots.load().catalog);
                tracing::debug!(name = %ev.name, id = %ev.id, wanted, "user event received");
                events.receive(ev, wanted);
            }
            Err(e) => tracing::warn!(error = %e, "undecodable user event dropped"),
        }
    }
}

/// Serf's reconnect: every `RECONNECT_INTERVAL` joins one failed member again (in turn), so a
/// pool split by a network partition becomes one again once the network heals (memberlist
/// itself never contacts a member it declared dead). Left members are not tried.
async fn reconnect(ml: Memberlist<Transport, Delegate>, table: Table) {
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
