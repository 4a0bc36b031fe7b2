//! Catching a panic inside a future, so that a component's panicking callback is reported as
//! its error instead of ending the executor: `AssertUnwindSafe(fut).catch_unwind().await`.

use std::future::Future;
use std::panic::{AssertUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// A future that resolves to `Err(payload)` if polling the inner one panicked.
    #[derive(Debug)]
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future + UnwindSafe> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// `.catch_unwind()` on any unwind-safe future (wrap it in `AssertUnwindSafe`).
pub(crate) trait FutureExt: Future + UnwindSafe + Sized {
    /// This future, with a panic while polling it caught as `Err`.
    fn catch_unwind(self) -> CatchUnwind<Self> {
        CatchUnwind { inner: self }
    }
}

impl<F: Future + UnwindSafe> FutureExt for F {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_caught_and_a_value_passes() {
        let ok = AssertUnwindSafe(async { 7 }).catch_unwind().await;
        assert_eq!(ok.ok(), Some(7));
        let failed = AssertUnwindSafe(async {
            tokio::task::yield_now().await; // panics on a later poll, not the first
            panic!("boom")
        })
        .catch_unwind()
        .await;
        let payload = failed.expect_err("the panic is caught");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    }
}
