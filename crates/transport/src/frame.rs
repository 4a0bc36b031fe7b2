//! Frames on a worker connection: tokio-util's length-delimited codec (4-byte big-endian length),
//! a tag byte, then a handshake message or a data body. Until its handshake has succeeded a
//! connection takes frames of at most [`MAX_HANDSHAKE_FRAME`] both ways, so a peer that has not
//! proven who it is cannot make a worker buffer more; then [`MAX_FRAME`].

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};

/// Largest frame sent or accepted: a longer one from a peer closes that connection; a batch that
/// would encode longer is split or, alone, failed.
pub const MAX_FRAME: usize = 64 << 20;

/// Largest frame sent or accepted before the handshake has succeeded (a hello, welcome or
/// refusal is a few hundred bytes): the most an unauthenticated peer can make a worker buffer
/// per connection. A peer declaring a longer one has that connection closed.
pub const MAX_HANDSHAKE_FRAME: usize = 16 << 10;

const HANDSHAKE: u8 = 0;
const DATA: u8 = 1;

/// The length-delimited codec, taking frames of at most `max_frame` bytes.
pub(crate) fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_frame)
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

/// A TCP connection to a peer, framed both ways: frames of at most [`MAX_HANDSHAKE_FRAME`]
/// bytes until [`Connection::authenticated`].
pub(crate) struct Connection {
    pub(crate) reader: FrameReader,
    pub(crate) writer: FrameWriter,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Connection {
            reader: FramedRead::new(rd, codec(MAX_HANDSHAKE_FRAME)),
            writer: FramedWrite::new(wr, codec(MAX_HANDSHAKE_FRAME)),
        }
    }

    /// The handshake succeeded: frames of up to [`MAX_FRAME`] bytes from now on, both ways.
    pub(crate) fn authenticated(&mut self) {
        self.reader.decoder_mut().set_max_frame_length(MAX_FRAME);
        self.writer.encoder_mut().set_max_frame_length(MAX_FRAME);
    }

    pub(crate) async fn send_handshake(&mut self, h: &Handshake) -> std::io::Result<()> {
        self.writer.send(Bytes::from(handshake_frame(h)?)).await
    }

    pub(crate) async fn recv(&mut self) -> std::io::Result<Frame> {
        read_frame(&mut self.reader).await
    }
}

/// A handshake frame's bytes (without the length): the tag, then the message.
pub(crate) fn handshake_frame(h: &Handshake) -> std::io::Result<Vec<u8>> {
    let mut body = vec![HANDSHAKE];
    rmp_serde::encode::write(&mut body, h).map_err(std::io::Error::other)?;
    Ok(body)
}

/// A data frame's bytes: the tag, then the body the [`crate::Wire`] encodes after it.
pub(crate) fn data_frame_start() -> Vec<u8> {
    vec![DATA]
}

pub(crate) async fn send_data(writer: &mut FrameWriter, frame: Vec<u8>) -> std::io::Result<()> {
    writer.send(Bytes::from(frame)).await
}

pub(crate) async fn read_frame(reader: &mut FrameReader) -> std::io::Result<Frame> {
    match reader.next().await {
        Some(Ok(bytes)) => decode_frame(bytes),
        Some(Err(e)) => Err(name_the_limit(e, reader.decoder().max_frame_length())),
        None => Err(std::io::ErrorKind::UnexpectedEof.into()),
    }
}

/// A codec error for a declared length over `limit` says the limit (tokio-util only says "frame
/// size too big"); other errors pass unchanged.
pub(crate) fn name_the_limit(e: std::io::Error, limit: usize) -> std::io::Error {
    let too_long = e
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
    if !too_long {
        return e;
    }
    let when = if limit < MAX_FRAME {
        " before the handshake"
    } else {
        ""
    };
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the peer declared a frame longer than the {limit} byte limit{when}"),
    )
}

/// A frame's bytes (without the length) as a handshake message or a data body.
pub(crate) fn decode_frame(mut bytes: BytesMut) -> std::io::Result<Frame> {
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
            .write_all(&((MAX_HANDSHAKE_FRAME as u32) + 1).to_be_bytes())
            .await
            .unwrap();
        let err = conn.recv().await.unwrap_err();
        assert!(
            err.to_string()
                .contains("longer than the 16384 byte limit before the handshake"),
            "{err}"
        );

        for garbage in [&[0, 0, 0, 3, 0, 0xc1, 0xc1][..], &[0, 0, 0, 1, 7]] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let mut conn = Connection::new(server);
            client.write_all(garbage).await.unwrap();
            let err = conn.recv().await.unwrap_err();
            assert!(err.to_string().contains("undecodable frame"), "{err}");
        }
    }

    #[tokio::test]
    async fn after_the_handshake_frames_up_to_max_frame_pass() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = Connection::new(TcpStream::connect(addr).await.unwrap());
        let (server, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(server);
        conn.authenticated();
        client.authenticated();
        let mut big = data_frame_start();
        big.resize(1 << 20, 7);
        let sending = tokio::spawn(async move {
            send_data(&mut client.writer, big).await.unwrap();
            client
        });
        match conn.recv().await.unwrap() {
            Frame::Data(body) => assert_eq!(body.len(), (1 << 20) - 1),
            other => panic!("{other:?}"),
        }
        let client = sending.await.unwrap();
        let mut raw = client
            .writer
            .into_inner()
            .reunite(client.reader.into_inner())
            .unwrap();
        raw.write_all(&((MAX_FRAME as u32) + 1).to_be_bytes())
            .await
            .unwrap();
        let err = conn.recv().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the peer declared a frame longer than the 67108864 byte limit"
        );
    }
}
