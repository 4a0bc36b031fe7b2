//! A peer that has not yet proven who it is cannot make a worker buffer more than
//! MAX_HANDSHAKE_FRAME (16 KiB) bytes: against a running transport on a real TCP port, with the bytes a
//! peer would send. Its own test binary, so its log subscriber is the only one.

use bytes::BytesMut;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempest_transport::{Handshake, Identity, Lane, Peer, Transport, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frames' body lengths to the test.
struct Lengths(mpsc::UnboundedSender<usize>);

impl Wire for Lengths {
    type Batch = Vec<u8>;
    fn task(_: &Vec<u8>) -> u32 {
        0
    }
    fn encode(&self, batches: &[Vec<u8>], out: &mut Vec<u8>) -> std::io::Result<()> {
        batches.iter().for_each(|b| out.extend_from_slice(b));
        Ok(())
    }
    async fn deliver(&self, frame: BytesMut, _: &str) -> Result<(), String> {
        self.0.send(frame.len()).map_err(|e| e.to_string())
    }
    fn undeliverable(&self, _: Vec<u8>, _: &str, _: &str) -> usize {
        0
    }
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A frame as a peer writes it: 4-byte big-endian length, tag (0 handshake, 1 data), body.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// Reads one frame (length, tag, body) as a handshake message.
async fn read_handshake(stream: &mut TcpStream) -> Handshake {
    let mut length = [0; 4];
    stream.read_exact(&mut length).await.unwrap();
    let mut body = vec![0; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).await.unwrap();
    assert_eq!(body[0], 0, "not a handshake frame");
    rmp_serde::from_slice(&body[1..]).unwrap()
}

/// Declaring a frame longer than MAX_HANDSHAKE_FRAME (here 1 MiB) before the hello closes that
/// connection at once, with a refusal and a log line naming the limit; the worker goes on
/// serving, and a welcomed peer's data frames may be longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_peer_cannot_declare_a_large_frame() {
    let lines = Lines::default();
    let sink = lines.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let me = Identity {
        address: "zz-worker:1".into(), // higher than the peer's: the peer dials
        topology: "t".into(),
        version: 1,
        secret: "s3cret".into(),
        exact_version: false,
    };
    let peer = Peer {
        address: "aa-worker:1".into(),
        tasks: vec![],
    };
    let (delivered, mut lengths) = mpsc::unbounded_channel();
    let _transport = Transport::new(me, listener, &[peer], 8).run(Lengths(delivered));

    let mut attacker = TcpStream::connect(addr).await.unwrap();
    // Only the length: unread bytes at the worker's close would reset the connection.
    attacker
        .write_all(&(1u32 << 20).to_be_bytes())
        .await
        .unwrap();
    // Well within the 5 s handshake timeout: the worker does not wait for the megabyte.
    let answer = tokio::time::timeout(Duration::from_secs(2), async {
        let answer = read_handshake(&mut attacker).await;
        let mut rest = Vec::new();
        attacker.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        answer
    })
    .await
    .expect("the connection stayed open: the worker waits for the declared frame");
    match answer {
        Handshake::Refused { reason } => assert_eq!(
            reason,
            "no valid hello: the peer declared a frame longer than the 16384 byte limit before the handshake"
        ),
        other => panic!("{other:?}"),
    }
    let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("refused a worker connection: no valid hello: the peer declared a frame longer than the 16384 byte limit before the handshake"),
        "{logged}"
    );

    // The worker still serves: a real peer is welcomed and its 1 MiB data frame delivered.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let hello = Handshake::Hello {
        secret: "s3cret".into(),
        topology: "t".into(),
        version: 1,
        from: "aa-worker:1".into(),
        lane: Lane::Data,
    };
    stream
        .write_all(&frame(0, &rmp_serde::to_vec(&hello).unwrap()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_handshake(&mut stream))
        .await
        .expect("no answer to the hello");
    assert!(matches!(answer, Handshake::Welcome), "{answer:?}");
    stream
        .write_all(&frame(1, &vec![7; 1 << 20]))
        .await
        .unwrap();
    let length = tokio::time::timeout(Duration::from_secs(5), lengths.recv())
        .await
        .expect("the data frame was not delivered");
    assert_eq!(length, Some(1 << 20));
}
