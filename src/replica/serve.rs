//! The server end of a replica stream (`rpc::Request::Subscribe`).
//!
//! Input: the subscriber's last applied index and this server's `Feed` and published
//! snapshot. Output: `Frame`s on the connection: a full dump when the index is 0 or older
//! than the feed reaches, else the entries after it; then every applied batch as it comes and a
//! heartbeat every second. Ends when the subscriber goes away (a write fails).

use std::time::Duration;

use crate::raft::Server;
use crate::raft::feed::Since;
use crate::rpc::{Conn, Frame, Response, write_frame};

/// How often a heartbeat goes out (also when entries flow).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// Most entries in one frame.
const MAX_ENTRIES_PER_FRAME: usize = 512;
/// Most KV value bytes in one frame (keeps a frame well inside `rpc::MAX_FRAME`).
const MAX_VALUE_BYTES_PER_FRAME: usize = 8 << 20;
/// How long one frame may take to write before the subscriber is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

async fn send(stream: &mut Conn, frame: Frame) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, write_frame(stream, &Response::Subscribe(frame))).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "replica stream write timed out")),
    }
}

/// Streams to one subscriber until it goes away.
pub(crate) async fn stream(stream: &mut Conn, server: &Server, from_index: u64) -> std::io::Result<()> {
    let feed = server.feed().clone();
    let mut changed = feed.subscribe();
    let mut last = from_index;
    let mut dump = from_index == 0;
    // A resumed stream says so at once (an empty run of entries), even before a new write.
    let mut resumed = !dump;
    let mut tick = tokio::time::interval(HEARTBEAT);
    send(stream, Frame::Heartbeat(server.heartbeat())).await?;
    loop {
        if dump {
            // The published snapshot is at most as new as the feed (entries are pushed before
            // they are published), so the entries after it follow from the feed.
            let snap = server.snapshots().load_full();
            last = snap.index;
            send(stream, Frame::Dump { index: snap.index, catalog: Box::new(snap.catalog.dump()) }).await?;
            dump = false;
        }
        match feed.since(last) {
            Since::TooOld => {
                dump = true;
                resumed = false;
                continue;
            }
            Since::Entries(entries) => {
                let mut frame = Vec::new();
                let mut bytes = 0;
                for (index, cmd) in entries {
                    bytes += cmd.as_ref().map_or(0, |c| c.value_bytes());
                    frame.push((index, cmd.map(|c| (*c).clone())));
                    last = index;
                    if frame.len() >= MAX_ENTRIES_PER_FRAME || bytes >= MAX_VALUE_BYTES_PER_FRAME {
                        send(stream, Frame::Entries(std::mem::take(&mut frame))).await?;
                        bytes = 0;
                    }
                }
                if !frame.is_empty() || resumed {
                    send(stream, Frame::Entries(frame)).await?;
                }
                resumed = false;
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return Ok(()) },
            _ = tick.tick() => send(stream, Frame::Heartbeat(server.heartbeat())).await?,
        }
    }
}
