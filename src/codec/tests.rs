//! Codec tests: round-trips, and golden bytes that pin each format (the bytes the callers'
//! own serde_json calls produced before this module existed).

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership, StoredMembership, Vote};
use serde::{Deserialize, Serialize};

use proptest::prelude::*;

use super::*;
use crate::backup::Backup;
use crate::catalog::{CatalogDump, Command, Node, Service, Weights};
use crate::gossip::{NodeMeta, Role};
use crate::raft::Entry;
use crate::raft::state_machine::SnapshotPayload;
use crate::rpc::{Request, Response, ServerInfo};

fn log_id() -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(2, 1), 7)
}

fn membership() -> StoredMembership<u64, BasicNode> {
    let nodes = BTreeMap::from([(1, BasicNode::new("10.0.0.1:8300"))]);
    StoredMembership::new(Some(log_id()), Membership::new(vec![BTreeSet::from([1])], nodes))
}

fn entry() -> Entry {
    Entry { log_id: log_id(), payload: EntryPayload::Normal(Command::QueryDelete("q1".to_owned())) }
}

fn node() -> Node {
    Node {
        id: "0b6c1f3e-0000-4000-8000-000000000001".to_owned(),
        name: "web-1".to_owned(),
        address: "10.0.0.1".to_owned(),
        datacenter: "dc1".to_owned(),
        tagged_addresses: BTreeMap::from([("lan".to_owned(), "10.0.0.1".to_owned())]),
        meta: BTreeMap::from([("rack".to_owned(), "r1".to_owned())]),
        create_index: 3,
        modify_index: 4,
    }
}

fn service() -> Service {
    Service {
        node: "web-1".to_owned(),
        id: "web".to_owned(),
        name: "web".to_owned(),
        tags: vec!["v1".to_owned()],
        address: String::new(),
        port: 80,
        ports: Vec::new(),
        meta: BTreeMap::new(),
        tagged_addresses: BTreeMap::new(),
        weights: Weights::default(),
        enable_tag_override: false,
        mesh: crate::catalog::Mesh::default(),
        create_index: 5,
        modify_index: 6,
    }
}

fn catalog() -> CatalogDump {
    CatalogDump { nodes: vec![node()], services: vec![service()], ..CatalogDump::default() }
}

fn snapshot() -> SnapshotPayload {
    SnapshotPayload { catalog: catalog(), last_applied: Some(log_id()), membership: membership() }
}

fn backup() -> Backup {
    Backup { index: 9, datacenter: "dc1".to_owned(), catalog: catalog() }
}

fn node_meta() -> NodeMeta {
    NodeMeta {
        role: Role::Server,
        dc: "dc1".to_owned(),
        raft_addr: "10.0.0.1:8300".to_owned(),
        raft_id: 1,
        version: "0.1.0".to_owned(),
        leaving: false,
        node_id: "11111111-2222-3333-4444-555555555555".to_owned(),
        wan_join_port: 8302,
    }
}

/// The shape of `local::persist`'s service file.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ServiceFile {
    service: Service,
}

fn join() -> Request {
    Request::Join { node_id: 2, addr: "10.0.0.2:8300".to_owned() }
}

fn hello() -> Response {
    Response::Hello(ServerInfo {
        node_id: 1,
        addr: "10.0.0.1:8300".to_owned(),
        clustered: true,
        serf_addr: None,
        membership_index: 7,
        voters: BTreeMap::from([(1, "10.0.0.1:8300".to_owned())]),
        raft_stats: None,
    })
}

/// The node row, and the catalog (one node, one service) that snapshots and backups carry.
macro_rules! node_json {
    () => {
        concat!(r#"{"id":"0b6c1f3e-0000-4000-8000-000000000001","name":"web-1","address":"10.0.0.1","datacenter":"dc1","#, r#""tagged_addresses":{"lan":"10.0.0.1"},"meta":{"rack":"r1"},"create_index":3,"modify_index":4}"#)
    };
}

macro_rules! catalog_json {
    () => {
        concat!(
            r#"{"nodes":["#,
            node_json!(),
            concat!(r#"],"services":[{"node":"web-1","id":"web","name":"web","tags":["v1"],"address":"","port":80,"#, r#""meta":{},"tagged_addresses":{},"weights":{"passing":1,"warning":1},"enable_tag_override":false,"#, r#""create_index":5,"modify_index":6}],"checks":[],"service_indexes":[],"#, r#""tables":{"nodes":0,"services":0,"checks":0,"queries":0},"queries":[],"#, r#""kv":{"entries":[],"tombstones":[],"sessions":[],"lock_delays":[],"indexes":{"kv":0,"sessions":0,"tombstones":0}}}"#)
        )
    };
}

const MEMBERSHIP_JSON: &str = concat!(
    r#"{"log_id":{"leader_id":{"term":2,"node_id":1},"index":7},"#,
    r#""membership":{"configs":[[1]],"nodes":{"1":{"addr":"10.0.0.1:8300"}}}}"#
);

/// `bytes` are exactly `golden` (compared as text, so a mismatch prints readably).
fn assert_golden(bytes: &[u8], golden: &str) {
    assert_eq!(std::str::from_utf8(bytes).expect("utf-8"), golden);
}

#[test]
fn entry_bytes_are_pinned_and_round_trip() {
    let bytes = Format::Entry.encode(&entry()).expect("encodes");
    assert_golden(
        &bytes,
        r#"{"log_id":{"leader_id":{"term":2,"node_id":1},"index":7},"payload":{"Normal":{"QueryDelete":"q1"}}}"#,
    );
    let back: Entry = Format::Entry.decode(&bytes).expect("decodes");
    assert_eq!(back.log_id, log_id());
    assert!(matches!(back.payload, EntryPayload::Normal(Command::QueryDelete(q)) if q == "q1"));
}

#[test]
fn meta_bytes_are_pinned_and_round_trip() {
    let committed = Format::Meta.encode(&Some(log_id())).expect("encodes");
    assert_golden(&committed, r#"{"leader_id":{"term":2,"node_id":1},"index":7}"#);
    assert_eq!(Format::Meta.decode::<Option<LogId<u64>>>(&committed).expect("decodes"), Some(log_id()));

    let vote = Format::Meta.encode(&Vote::new_committed(3, 1)).expect("encodes");
    assert_golden(&vote, r#"{"leader_id":{"term":3,"node_id":1},"committed":true}"#);
    assert_eq!(Format::Meta.decode::<Vote<u64>>(&vote).expect("decodes"), Vote::new_committed(3, 1));

    let members = Format::Meta.encode(&membership()).expect("encodes");
    assert_golden(&members, MEMBERSHIP_JSON);
    assert_eq!(
        Format::Meta.decode::<StoredMembership<u64, BasicNode>>(&members).expect("decodes"),
        membership()
    );
}

#[test]
fn row_bytes_are_pinned_and_round_trip_through_heed() {
    use heed::{BytesDecode as _, BytesEncode as _};
    let bytes = Format::Row.encode(&node()).expect("encodes");
    assert_golden(&bytes, node_json!());
    assert_eq!(Format::Row.decode::<Node>(&bytes).expect("decodes"), node());
    // The LMDB value codec writes and reads the same bytes.
    let row = node();
    let heed_bytes = Row::<Node>::bytes_encode(&row).expect("encodes");
    assert_eq!(&*heed_bytes, &bytes[..]);
    assert_eq!(Row::<Node>::bytes_decode(&bytes).expect("decodes"), node());
}

#[test]
fn snapshot_bytes_are_pinned_and_round_trip() {
    let bytes = Format::Snapshot.encode(&snapshot()).expect("encodes");
    let golden = concat!(
        r#"{"catalog":"#,
        catalog_json!(),
        r#","last_applied":{"leader_id":{"term":2,"node_id":1},"index":7},"membership":"#
    );
    assert_golden(&bytes, &format!("{golden}{MEMBERSHIP_JSON}}}"));
    assert_eq!(Format::Snapshot.decode::<SnapshotPayload>(&bytes).expect("decodes"), snapshot());
}

#[test]
fn frame_payload_bytes_are_pinned_and_round_trip() {
    let bytes = Format::FramePayload.encode(&join()).expect("encodes");
    assert_golden(&bytes, r#"{"Join":{"node_id":2,"addr":"10.0.0.2:8300"}}"#);
    let back: Request = Format::FramePayload.decode(&bytes).expect("decodes");
    assert!(matches!(back, Request::Join { node_id: 2, ref addr } if addr == "10.0.0.2:8300"));

    let bytes = Format::FramePayload.encode(&hello()).expect("encodes");
    assert_golden(
        &bytes,
        concat!(
            r#"{"Hello":{"node_id":1,"addr":"10.0.0.1:8300","clustered":true,"serf_addr":null,"membership_index":7,"#,
            r#""voters":{"1":"10.0.0.1:8300"}}}"#
        ),
    );
    let back: Response = Format::FramePayload.decode(&bytes).expect("decodes");
    let Response::Hello(info) = back else { panic!("not a hello: {back:?}") };
    let Response::Hello(want) = hello() else { unreachable!() };
    assert_eq!(info, want);
}

#[test]
fn backup_body_bytes_are_pinned_and_round_trip() {
    let bytes = Format::BackupBody.encode(&backup()).expect("encodes");
    assert_golden(&bytes, concat!(r#"{"index":9,"datacenter":"dc1","catalog":"#, catalog_json!(), "}"));
    assert_eq!(Format::BackupBody.decode::<Backup>(&bytes).expect("decodes"), backup());
}

#[test]
fn node_meta_text_is_pinned_and_round_trips() {
    let text = encode_node_meta(&node_meta()).expect("encodes");
    assert_eq!(
        text,
        concat!(
            r#"{"role":"server","dc":"dc1","raft_addr":"10.0.0.1:8300","raft_id":1,"version":"0.1.0","#,
            r#""leaving":false,"node_id":"11111111-2222-3333-4444-555555555555","wan_join_port":8302}"#
        )
    );
    assert_eq!(decode_node_meta::<NodeMeta>(text.as_bytes()).expect("decodes"), node_meta());
    // The meta of an agent from before `node_id` and `wan_join_port` still decodes (the fields
    // default to empty and 0: no WAN pool to flood-join).
    let old = r#"{"role":"server","dc":"dc1","raft_addr":"10.0.0.1:8300","raft_id":1,"version":"0.1.0","leaving":false}"#;
    let decoded: NodeMeta = decode_node_meta(old.as_bytes()).expect("decodes");
    assert_eq!(decoded, NodeMeta { node_id: String::new(), wan_join_port: 0, ..node_meta() });
}

#[test]
fn local_file_bytes_are_pinned_and_round_trip() {
    let file = ServiceFile { service: service() };
    let bytes = Format::LocalFile.encode(&file).expect("encodes");
    let golden = r#"{
  "service": {
    "node": "web-1",
    "id": "web",
    "name": "web",
    "tags": [
      "v1"
    ],
    "address": "",
    "port": 80,
    "meta": {},
    "tagged_addresses": {},
    "weights": {
      "passing": 1,
      "warning": 1
    },
    "enable_tag_override": false,
    "create_index": 5,
    "modify_index": 6
  }
}"#;
    assert_golden(&bytes, golden);
    assert_eq!(Format::LocalFile.decode::<ServiceFile>(&bytes).expect("decodes"), file);
}

#[test]
fn a_decode_error_names_its_format_and_keeps_serde_json_text() {
    let err = Format::BackupBody.decode::<Backup>(b"{").expect_err("truncated");
    assert_eq!(err.format(), Format::BackupBody);
    let json = serde_json::from_slice::<Backup>(b"{").expect_err("truncated");
    assert_eq!(err.to_string(), json.to_string());
    assert!(std::error::Error::source(&err).is_none(), "the text is not repeated in a chain");
    assert_eq!(Format::Entry.decode::<Entry>(b"").expect_err("empty").format(), Format::Entry);
}

proptest! {
    #[test]
    fn entries_round_trip(term in any::<u64>(), node in any::<u64>(), index in any::<u64>(), q in ".*") {
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, node), index),
            payload: EntryPayload::Normal(Command::QueryDelete(q.clone())),
        };
        let back: Entry = Format::Entry.decode(&Format::Entry.encode(&e).expect("encodes")).expect("decodes");
        prop_assert_eq!(back.log_id, e.log_id);
        let same = matches!(back.payload, EntryPayload::Normal(Command::QueryDelete(ref b)) if *b == q);
        prop_assert!(same, "{:?}", back.payload);
    }

    #[test]
    fn frame_payloads_round_trip(node_id in any::<u64>(), addr in ".*") {
        let req = Request::Join { node_id, addr: addr.clone() };
        let back: Request = Format::FramePayload.decode(&Format::FramePayload.encode(&req).expect("encodes")).expect("decodes");
        let joined = matches!(back, Request::Join { node_id: n, addr: ref a } if n == node_id && *a == addr);
        prop_assert!(joined, "{:?}", back);
    }
}

#[test]
fn keyring_file_bytes_are_pinned_and_round_trip() {
    // Consul's `local.keyring`: a JSON array of base64 keys, primary first, indented.
    let keys = vec![
        "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=".to_owned(),
        "YWJjZGVmZ2hpamtsbW5vcA==".to_owned(),
    ];
    let bytes = Format::KeyringFile.encode(&keys).expect("encodes");
    let golden = "[\n  \"pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=\",\n  \"YWJjZGVmZ2hpamtsbW5vcA==\"\n]";
    assert_eq!(String::from_utf8(bytes.clone()).expect("utf-8"), golden);
    assert_eq!(Format::KeyringFile.decode::<Vec<String>>(&bytes).expect("decodes"), keys);
}

#[test]
fn keyring_message_bytes_are_pinned_and_round_trip() {
    use crate::gossip::keyquery::{KeyringMessage, KeyringReply};
    use crate::gossip::keyring::{KeyOp, NodeKeys};
    let query = KeyringMessage::Query {
        id: 7,
        origin: "10.0.0.1:8301".parse().expect("addr"),
        op: KeyOp::Install,
        key: "YWJjZGVmZ2hpamtsbW5vcA==".into(),
        relay: 2,
    };
    let bytes = Format::KeyringMessage.encode(&query).expect("encodes");
    assert_eq!(
        String::from_utf8(bytes.clone()).expect("utf-8"),
        r#"{"Query":{"id":7,"origin":"10.0.0.1:8301","op":"install","key":"YWJjZGVmZ2hpamtsbW5vcA==","relay":2}}"#
    );
    assert_eq!(Format::KeyringMessage.decode::<KeyringMessage>(&bytes).expect("decodes"), query);
    let keys = NodeKeys { keys: vec!["A=".into()], primary: "A=".into() };
    let reply = KeyringMessage::Reply(KeyringReply { id: 7, node: "s1".into(), result: Ok(keys) });
    let bytes = Format::KeyringMessage.encode(&reply).expect("encodes");
    assert_eq!(
        String::from_utf8(bytes.clone()).expect("utf-8"),
        r#"{"Reply":{"id":7,"node":"s1","result":{"Ok":{"keys":["A="],"primary":"A="}}}}"#
    );
    assert_eq!(Format::KeyringMessage.decode::<KeyringMessage>(&bytes).expect("decodes"), reply);
}
