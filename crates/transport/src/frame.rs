//! Frames on a worker connection: tokio-util's length-delimited codec (4-byte big-endian length)
//! limited to [`MAX_FRAME`] both ways, a tag byte, then a handshake message or a data body.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Largest frame sent or accepted: a longer one from a peer closes that connection; a batch that
/// would encode longer is split or, alone, failed.
pub const MAX_FRAME: usize = 64 << 20;

const HANDSHAKE: u8 = 0;
const DATA: u8 = 1;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Which of a worker pair's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lane {
    /// Tuples to bolts.
    Data,
    /// Acker messages and tree outcomes (to ackers and spouts, which always drain).
    Control,
}

/// Both lanes.
pub const LANES: [Lane; 2] = [Lane::Data, Lane::Control];

/// The messages of a handshake (`handshake.rs` has its steps).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Handshake {
    /// The dialer introduces itself.
    Hello {
        /// The cluster secret.
        secret: String,
        /// Its topology.
        topology: String,
        /// Its assignment version.
        version: u64,
        /// Its address (host:port), as in the assignment.
        from: String,
        /// The lane this connection is for.
        lane: Lane,
    },
    /// The acceptor took the connection for its link to the dialer.
    Welcome,
    /// The acceptor did not; the connection closes.
    Refused {
        /// Why.
        reason: String,
    },
}

/// A received frame.
#[derive(Debug)]
pub(crate) enum Frame {
    Handshake(Handshake),
    Data(BytesMut),
}

/// Reads frames.
pub(crate) type FrameReader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
/// Writes frames.
pub(crate) type FrameWriter = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

/// A TCP connection to a peer, framed both ways.
pub(crate) struct Connection {
    pub(crate) reader: FrameReader,
    pub(crate) writer: FrameWriter,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Connection {
            reader: FramedRead::new(rd, codec()),
            writer: FramedWrite::new(wr, codec()),
        }
    }

    pub(crate) async fn send_handshake(&mut self, h: &Handshake) -> std::io::Result<()> {
        let mut body = vec![HANDSHAKE];
        rmp_serde::encode::write(&mut body, h).map_err(std::io::Error::other)?;
        self.writer.send(Bytes::from(body)).await
    }

    pub(crate) async fn recv(&mut self) -> std::io::Result<Frame> {
        read_frame(&mut self.reader).await
    }
}

/// A data frame's bytes: the tag, then the body the [`crate::Wire`] encodes after it.
pub(crate) fn data_frame_start() -> Vec<u8> {
    vec![DATA]
}

pub(crate) async fn send_data(writer: &mut FrameWriter, frame: Vec<u8>) -> std::io::Result<()> {
    writer.send(Bytes::from(frame)).await
}

pub(crate) async fn read_frame(reader: &mut FrameReader) -> std::io::Result<Frame> {
    let mut bytes = match reader.next().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(e),
        None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
    };
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    match bytes.first() {
        Some(&HANDSHAKE) => rmp_serde::from_slice(&bytes[1..])
            .map(Frame::Handshake)
            .map_err(|e| bad(format!("undecodable frame: {e}"))),
        Some(&DATA) => {
            let _ = bytes.split_to(1);
            Ok(Frame::Data(bytes))
        }
        Some(tag) => Err(bad(format!("undecodable frame: unknown tag {tag}"))),
        None => Err(bad("undecodable frame: empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn oversized_and_garbage_frames_are_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(server);
        client
            .write_all(&((MAX_FRAME as u32) + 1).to_be_bytes())
            .await
            .unwrap();
        let err = conn.recv().await.unwrap_err();
        assert!(err.to_string().contains("frame size too big"), "{err}");

        for garbage in [&[0, 0, 0, 3, 0, 0xc1, 0xc1][..], &[0, 0, 0, 1, 7]] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let mut conn = Connection::new(server);
            client.write_all(garbage).await.unwrap();
            let err = conn.recv().await.unwrap_err();
            assert!(err.to_string().contains("undecodable frame"), "{err}");
        }
    }
}
