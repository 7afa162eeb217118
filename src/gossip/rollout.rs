//! GOSSIP ROLLOUT: the transport that lets an agent read encrypted gossip while it still sends
//! plain gossip, Consul's first step of enabling encryption on a live pool
//! (`encrypt_verify_outgoing = false`).
//!
//! Input: memberlist's calls on its transport. Output: the same calls on the real transport
//! (`TokioNetTransport`), unchanged, except the answer to "is this transport already secure?".
//!
//! Why a wrapper and not memberlist's own option: memberlist 0.8.5 ties *decrypting* to
//! `gossip_verify_outgoing` (`Memberlist::encryption_enabled` requires it, and both its packet
//! and stream decoders are keyed only when it holds), so an agent asked to send plain text
//! would also stop reading the encrypted messages of the agents already at step 2, and the
//! pool would split half-way through the rollout. memberlist encrypts outgoing messages only
//! when the transport says it is not secure on its own (`packet_secure`, `stream_secure`);
//! this wrapper says "secure" while outgoing encryption is off, so the agent keeps memberlist's
//! `gossip_verify_outgoing = true` (and reads encrypted and, with `gossip_verify_incoming =
//! false`, plain messages) yet sends plain text. Every other call is passed through, so with
//! `plain_outgoing = false` the wrapper changes nothing.
//!
//! Invariant: `plain_outgoing` is true only when `encrypt_verify_outgoing = false` was
//! configured with a key (`gossip::memberlist` decides); it never turns encryption off for an
//! agent that asked for it.

use memberlist::agnostic_lite::RuntimeLite;
use memberlist::proto::Payload;
use memberlist::transport::{AddressResolver, Connection, PacketSubscriber, StreamSubscriber, Transport};

/// `T`'s options plus whether outgoing gossip stays plain.
pub(super) struct RolloutOptions<O> {
    pub(super) inner: O,
    pub(super) plain_outgoing: bool,
}

/// `T`, reporting itself secure while outgoing gossip stays plain.
pub(super) struct Rollout<T> {
    inner: T,
    plain_outgoing: bool,
}

type Address<T> = <<T as Transport>::Resolver as AddressResolver>::Address;
type Instant<T> = <<T as Transport>::Runtime as RuntimeLite>::Instant;
type Reader<T> = <<T as Transport>::Connection as Connection>::Reader;
type Writer<T> = <<T as Transport>::Connection as Connection>::Writer;

impl<T: Transport> Transport for Rollout<T> {
    type Error = T::Error;
    type Id = T::Id;
    type Address = T::Address;
    type ResolvedAddress = T::ResolvedAddress;
    type Resolver = T::Resolver;
    type Connection = T::Connection;
    type Runtime = T::Runtime;
    type Options = RolloutOptions<T::Options>;

    async fn new(options: Self::Options) -> Result<Self, Self::Error> {
        Ok(Self { inner: T::new(options.inner).await?, plain_outgoing: options.plain_outgoing })
    }

    async fn resolve(&self, addr: &Address<T>) -> Result<Self::ResolvedAddress, Self::Error> {
        self.inner.resolve(addr).await
    }

    fn local_id(&self) -> &Self::Id {
        self.inner.local_id()
    }

    fn local_address(&self) -> &Address<T> {
        self.inner.local_address()
    }

    fn advertise_address(&self) -> &Self::ResolvedAddress {
        self.inner.advertise_address()
    }

    fn max_packet_size(&self) -> usize {
        self.inner.max_packet_size()
    }

    fn header_overhead(&self) -> usize {
        self.inner.header_overhead()
    }

    fn blocked_address(&self, addr: &Self::ResolvedAddress) -> Result<(), Self::Error> {
        self.inner.blocked_address(addr)
    }

    async fn read(&self, from: &Self::ResolvedAddress, conn: &mut Reader<T>) -> Result<usize, Self::Error> {
        self.inner.read(from, conn).await
    }

    async fn write(&self, conn: &mut Writer<T>, payload: Payload) -> Result<usize, Self::Error> {
        self.inner.write(conn, payload).await
    }

    async fn send_to(
        &self,
        addr: &Self::ResolvedAddress,
        packet: Payload,
    ) -> Result<(usize, Instant<T>), Self::Error> {
        self.inner.send_to(addr, packet).await
    }

    async fn open(
        &self,
        addr: &Self::ResolvedAddress,
        deadline: Instant<T>,
    ) -> Result<Self::Connection, Self::Error> {
        self.inner.open(addr, deadline).await
    }

    fn packet(&self) -> PacketSubscriber<Self::ResolvedAddress, Instant<T>> {
        self.inner.packet()
    }

    fn stream(&self) -> StreamSubscriber<Self::ResolvedAddress, Self::Connection> {
        self.inner.stream()
    }

    fn packet_reliable(&self) -> bool {
        self.inner.packet_reliable()
    }

    fn packet_secure(&self) -> bool {
        self.plain_outgoing || self.inner.packet_secure()
    }

    fn stream_secure(&self) -> bool {
        self.plain_outgoing || self.inner.stream_secure()
    }

    async fn shutdown(&self) -> Result<(), Self::Error> {
        self.inner.shutdown().await
    }
}
