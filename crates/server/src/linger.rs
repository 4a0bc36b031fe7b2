//! Lingering close: when a request is refused before its body is read (wrong secret, too
//! large), the rest of the body is read and discarded, within limits, before answering.
//! Closing a connection with unread data makes the kernel send a reset, and the client then
//! loses the answer ("connection reset" instead of "missing or wrong cluster secret").

use axum::body::Body;
use futures::StreamExt;
use std::time::Duration;

/// At most this much of a refused body is read: above Nimbus's default upload limit (512 MiB),
/// so that a refused upload of any size a client would send is read to its end. A smaller cap
/// closed the connection in the middle of a 140 MiB debug binary, and the client saw "broken
/// pipe" instead of the 413 when its write lost the race with the close. The time limit below
/// bounds the work a slow or endless sender can cause.
const MAX_BYTES: u64 = 1 << 30;
/// ... for at most this long.
const MAX_TIME: Duration = Duration::from_secs(10);

/// Reads and discards what is left of `body`, within the limits.
pub async fn discard(body: Body) {
    let mut stream = body.into_data_stream();
    let read = tokio::time::timeout(MAX_TIME, async {
        let mut n = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            n += chunk.len() as u64;
            if n > MAX_BYTES {
                break;
            }
        }
    });
    let _ = read.await;
}
