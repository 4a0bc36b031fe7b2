//! Opening a connection: the dialer says who it is, the acceptor welcomes or refuses it, and a
//! refused dialer is told why.

use crate::frame::{Connection, Frame, Handshake, Lane};

/// What this worker is, for handshakes.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its address (host:port), as in the assignment.
    pub address: String,
    /// Its topology.
    pub topology: String,
    /// Its assignment version when it started.
    pub version: u64,
    /// The cluster secret.
    pub secret: String,
    /// Admit only peers of exactly this assignment version, and hold what is queued for an
    /// unreachable peer however long it takes (exactly-once topologies: a peer of another
    /// version belongs to a run being rolled back, and a failed tree would roll back this one).
    pub exact_version: bool,
}

/// Sends `hello` and waits for the answer: the connection if welcomed (then taking frames of
/// up to [`crate::MAX_FRAME`]), else why not.
pub(crate) async fn dial(mut conn: Connection, hello: &Handshake) -> Result<Connection, String> {
    conn.send_handshake(hello)
        .await
        .map_err(|e| e.to_string())?;
    match conn.recv().await {
        Ok(Frame::Handshake(Handshake::Welcome)) => {
            conn.authenticated();
            Ok(conn)
        }
        Ok(Frame::Handshake(Handshake::Refused { reason })) => Err(format!("refused: {reason}")),
        Ok(_) => Err("unexpected answer to the hello".into()),
        Err(e) => Err(format!("no answer to the hello: {e}")),
    }
}

/// The hello a connection opened with.
#[derive(Debug)]
pub(crate) struct Hello {
    pub(crate) secret: String,
    pub(crate) topology: String,
    pub(crate) version: u64,
    pub(crate) from: String,
    pub(crate) lane: Lane,
}

/// Reads the dialer's hello.
pub(crate) async fn read_hello(conn: &mut Connection) -> Result<Hello, String> {
    match conn.recv().await {
        Ok(Frame::Handshake(Handshake::Hello {
            secret,
            topology,
            version,
            from,
            lane,
        })) => Ok(Hello {
            secret,
            topology,
            version,
            from,
            lane,
        }),
        Ok(_) => Err("the first frame is not a hello".into()),
        Err(e) => Err(format!("no valid hello: {e}")),
    }
}
