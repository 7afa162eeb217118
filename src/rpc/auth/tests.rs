//! The challenge between two real sockets: admitted with a shared key, refused with a wrong,
//! replayed, garbage, truncated or missing challenge, and during a key rotation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

struct Ring(Vec<Vec<u8>>);

impl ClusterKeys for Ring {
    fn keys(&self) -> Vec<Vec<u8>> {
        self.0.clone()
    }
}

fn ring(keys: &[&[u8]]) -> Auth {
    Auth::keyed(Arc::new(Ring(keys.iter().map(|k| k.to_vec()).collect())))
}

async fn pair() -> (Conn, Conn) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dial = TcpStream::connect(listener.local_addr().unwrap());
    let (dialled, accepted) = tokio::join!(dial, listener.accept());
    let (accepted, peer) = accepted.unwrap();
    (Conn::plain(dialled.unwrap()).unwrap(), Conn::accepted(accepted, peer))
}

/// Runs both sides; returns (client result, server result).
async fn handshake(client: &Auth, server: &Auth) -> (Result<(), AuthError>, Result<(), AuthError>) {
    let (mut c, mut s) = pair().await;
    let server = server.clone();
    let serve = tokio::spawn(async move {
        let r = server.admit(&mut s).await;
        drop(s);
        r
    });
    let client_result = client.prove(&mut c).await;
    drop(c);
    (client_result, serve.await.unwrap())
}

#[tokio::test]
async fn a_shared_key_admits_and_a_wrong_key_is_refused_on_both_ends() {
    let (c, s) = handshake(&ring(&[b"k1"]), &ring(&[b"k1"])).await;
    assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
    let (c, s) = handshake(&ring(&[b"k1"]), &ring(&[b"k2"])).await;
    assert!(matches!(c, Err(AuthError::WrongKey)), "{c:?}");
    assert!(s.is_err(), "the server admits no peer that could not check its proof");
    // No key at all fails closed.
    let (c, _) = handshake(&ring(&[]), &ring(&[b"k1"])).await;
    assert!(matches!(c, Err(AuthError::NoKey)), "{c:?}");
    let (_, s) = handshake(&ring(&[b"k1"]), &ring(&[])).await;
    assert!(matches!(s, Err(AuthError::NoKey)), "{s:?}");
}

#[tokio::test]
async fn agents_in_the_middle_of_a_rotation_still_admit_each_other() {
    // `use` done on the server, not yet on the client (both hold both keys).
    let (c, s) = handshake(&ring(&[b"old", b"new"]), &ring(&[b"new", b"old"])).await;
    assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
    // `remove old` done on the server, the client still uses the old key but holds the new.
    let (c, s) = handshake(&ring(&[b"old", b"new"]), &ring(&[b"new"])).await;
    assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
    // A client that never installed the server's primary is refused.
    let (c, s) = handshake(&ring(&[b"old"]), &ring(&[b"new", b"old"])).await;
    assert!(c.is_err() && s.is_err(), "{c:?} {s:?}");
}

#[tokio::test]
async fn an_open_end_and_a_keyed_end_do_not_talk() {
    // A keyless client's first frame is no challenge.
    let (mut c, mut s) = pair().await;
    let server = ring(&[b"k1"]);
    let serve = tokio::spawn(async move { server.admit(&mut s).await });
    crate::rpc::write_frame(&mut c, &crate::rpc::Request::Hello).await.unwrap();
    assert!(matches!(serve.await.unwrap(), Err(AuthError::NotAChallenge)));
    // A keyed client talking to a keyless server: the server reads the magic as a length
    // above `MAX_FRAME` and closes.
    let (mut c, mut s) = pair().await;
    let serve =
        tokio::spawn(async move { crate::rpc::read_frame::<crate::rpc::Request>(&mut s).await.is_err() });
    assert!(ring(&[b"k1"]).prove(&mut c).await.is_err());
    assert!(serve.await.unwrap(), "the keyless server refuses the challenge as an oversized frame");
}

#[tokio::test]
async fn a_recorded_handshake_does_not_replay() {
    let key = ring(&[b"k1"]);
    // Record what an honest client sends.
    let (mut c, mut s) = pair().await;
    let server = key.clone();
    let serve = tokio::spawn(async move {
        server.admit(&mut s).await.unwrap();
        s
    });
    let record = async {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        let mut hello = [0u8; 40];
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A tap between the honest client and the server.
        let client = tokio::spawn(async move {
            let mut conn = Conn::plain(TcpStream::connect(addr).await.unwrap()).unwrap();
            ring(&[b"k1"]).prove(&mut conn).await
        });
        let (mut tap, _) = listener.accept().await.unwrap();
        tap.read_exact(&mut hello).await.unwrap();
        tx.extend_from_slice(&hello);
        c.write_all(&hello).await.unwrap();
        let mut reply = [0u8; 64];
        c.read_exact(&mut reply).await.unwrap();
        rx.extend_from_slice(&reply);
        tap.write_all(&reply).await.unwrap();
        let mut proof = [0u8; 32];
        tap.read_exact(&mut proof).await.unwrap();
        tx.extend_from_slice(&proof);
        c.write_all(&proof).await.unwrap();
        let mut ok = [0u8; 1];
        c.read_exact(&mut ok).await.unwrap();
        tap.write_all(&ok).await.unwrap();
        assert!(client.await.unwrap().is_ok(), "the tapped handshake succeeds");
        tx
    };
    let sent = record.await;
    serve.await.unwrap();
    // Replay the client's bytes to a new connection: the server's nonce differs.
    let (mut c, mut s) = pair().await;
    let serve = tokio::spawn(async move { key.admit(&mut s).await });
    c.write_all(&sent).await.unwrap();
    assert!(matches!(serve.await.unwrap(), Err(AuthError::WrongKey)));
}

#[tokio::test]
async fn garbage_truncated_and_silent_challenges_fail_the_connection_only() {
    let key = ring(&[b"k1"]);
    for bytes in [&b"GET / HTTP/1.1\r\n\r\n........................"[..], &b"CAIRNRA1short"[..], &b""[..]] {
        let (mut c, mut s) = pair().await;
        let server = key.clone();
        let serve = tokio::spawn(async move { server.admit(&mut s).await });
        c.write_all(bytes).await.unwrap();
        c.shutdown().await.unwrap();
        let r = serve.await.unwrap();
        assert!(matches!(r, Err(AuthError::NotAChallenge | AuthError::Io(_))), "{bytes:?}: {r:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_dropped_after_the_handshake_timeout() {
    let (_c, mut s) = pair().await;
    let r = ring(&[b"k1"]).admit(&mut s).await;
    assert!(matches!(r, Err(AuthError::Timeout(t)) if t == HANDSHAKE_TIMEOUT), "{r:?}");
}

#[test]
fn exposure_without_keys_needs_loopback_or_the_switch() {
    let public = "10.0.0.1:8300".parse().unwrap();
    let err = check_exposure(public, &Auth::open(), false).unwrap_err();
    assert_eq!(
        err,
        "refusing to serve the server RPC on 10.0.0.1:8300 without encrypt or TLS with verify_incoming: \
         anyone who can reach it could join as a voter or write to the catalog; set insecure_rpc = true to accept that"
    );
    assert!(check_exposure(public, &Auth::open(), true).is_ok());
    assert!(check_exposure(public, &ring(&[b"k"]), false).is_ok());
    assert!(check_exposure("127.0.0.1:8300".parse().unwrap(), &Auth::open(), false).is_ok());
    assert!(check_exposure("[::1]:8300".parse().unwrap(), &Auth::open(), false).is_ok());
    assert!(check_exposure("0.0.0.0:8300".parse().unwrap(), &Auth::open(), false).is_err());
}

/// The cost of one admission over loopback (both ends in this process), for the module doc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_handshake_costs_little_next_to_a_connection() {
    let key = ring(&[b"0123456789abcdef0123456789abcdef"]);
    let rounds = 200;
    let (mut plain, mut keyed) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = Instant::now();
        let (c, s) = pair().await;
        plain += t.elapsed();
        drop((c, s));
        let t = Instant::now();
        let (c, s) = handshake(&key, &key).await;
        keyed += t.elapsed();
        assert!(c.is_ok() && s.is_ok());
    }
    let (plain, keyed) = (plain / rounds, keyed / rounds);
    eprintln!("loopback connect {plain:?}; connect + admission {keyed:?}");
    assert!(keyed < Duration::from_millis(50), "{keyed:?} per admitted connection");
}

#[tokio::test(start_paused = true)]
async fn the_challenge_runs_under_the_configured_rpc_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.json");
    std::fs::write(&file, r#"{"limits":{"rpc_handshake_timeout":"1500ms"}}"#).unwrap();
    let o = crate::config::Overrides {
        dev: true,
        node_name: Some("n1".into()),
        config_files: vec![file],
        ..crate::config::Overrides::default()
    };
    let config = crate::config::Config::load(&o).unwrap().0;
    let tls = Tls::load(&config).unwrap();
    let (_c, mut s) = pair().await;
    let r = ring(&[b"k1"]).with_tls(tls).admit(&mut s).await;
    assert!(matches!(r, Err(AuthError::Timeout(t)) if t == Duration::from_millis(1500)), "{r:?}");
}

#[tokio::test]
async fn during_a_rollout_unproven_peers_are_admitted_but_a_started_challenge_must_succeed() {
    // Step 1 server (incoming false): a keyless peer's first frame goes through intact.
    let step1 = ring(&[b"k1"]).with_rollout(false, false);
    let (mut c, mut s) = pair().await;
    c.write_all(&[0, 0, 0, 2, b'h', b'i']).await.unwrap();
    step1.admit(&mut s).await.unwrap();
    let mut frame = [0u8; 6];
    s.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame, [0, 0, 0, 2, b'h', b'i']);
    // A step 1 dialler proves nothing, so a strict server refuses it.
    let (c, s) = handshake(&step1, &ring(&[b"k1"])).await;
    assert!(c.is_ok() && matches!(s, Err(AuthError::NotAChallenge | AuthError::Io(_))), "{c:?} {s:?}");
    // A step 2 dialler proves its key to a step 1 server.
    let step2 = ring(&[b"k1"]).with_rollout(false, true);
    let (c, s) = handshake(&step2, &step1).await;
    assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
    // One that starts the challenge with a wrong key is refused even during the rollout.
    let (c, s) = handshake(&ring(&[b"k2"]), &step1).await;
    assert!(c.is_err() && s.is_err(), "{c:?} {s:?}");
}

#[test]
fn a_rollout_server_counts_as_open_for_the_exposure_check() {
    let public = "10.0.0.1:8300".parse().unwrap();
    assert!(check_exposure(public, &ring(&[b"k1"]), false).is_ok());
    assert!(check_exposure(public, &ring(&[b"k1"]).with_rollout(false, true), false).is_err());
    assert!(check_exposure(public, &ring(&[b"k1"]).with_rollout(false, true), true).is_ok());
}
