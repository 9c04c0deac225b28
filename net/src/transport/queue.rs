//! Single-executor synchronisation used by a connection: the outgoing queue its writer drains and the
//! one-shot slot a caller of `invoke` waits on. Both are `!Send` and lock-free (one thread).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A FIFO with one consumer task; producers never wait. Closing wakes the consumer and makes further
/// pushes fail.
pub(crate) struct OutQueue<T> {
    items: RefCell<VecDeque<T>>,
    consumer: Cell<Option<Waker>>,
    closed: Cell<bool>,
    finishing: Cell<bool>,
}

impl<T> OutQueue<T> {
    pub(crate) fn new() -> Self {
        OutQueue {
            items: RefCell::new(VecDeque::new()),
            consumer: Cell::new(None),
            closed: Cell::new(false),
            finishing: Cell::new(false),
        }
    }

    /// Appends `item`; gives it back if the queue is closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        if self.closed.get() || self.finishing.get() {
            return Err(item);
        }
        self.items.borrow_mut().push_back(item);
        if let Some(w) = self.consumer.take() {
            w.wake();
        }
        Ok(())
    }

    /// Closes the queue: queued items are dropped and the consumer wakes up.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.items.borrow_mut().clear();
        if let Some(w) = self.consumer.take() {
            w.wake();
        }
    }

    /// Stops accepting items; the consumer still gets those already queued, then `false`.
    pub(crate) fn finish(&self) {
        self.finishing.set(true);
        if let Some(w) = self.consumer.take() {
            w.wake();
        }
    }

    /// Waits until items are queued, then moves up to `max` of them into `out`. Returns false once
    /// the queue is closed, or finished and empty.
    pub(crate) async fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> bool {
        poll_fn(|cx| {
            if self.closed.get() {
                return Poll::Ready(false);
            }
            let mut items = self.items.borrow_mut();
            if items.is_empty() && self.finishing.get() {
                return Poll::Ready(false);
            }
            if items.is_empty() {
                self.consumer.set(Some(cx.waker().clone()));
                return Poll::Pending;
            }
            let n = items.len().min(max);
            out.extend(items.drain(..n));
            Poll::Ready(true)
        })
        .await
    }
}

/// A value delivered once from one task to another, or the news that it never will be.
pub(crate) struct Oneshot<T> {
    value: RefCell<Option<Option<T>>>,
    waiter: Cell<Option<Waker>>,
}

impl<T> Oneshot<T> {
    pub(crate) fn new() -> Self {
        Oneshot {
            value: RefCell::new(None),
            waiter: Cell::new(None),
        }
    }

    /// Delivers `value` (`None`: it will never come). Later deliveries are ignored.
    pub(crate) fn complete(&self, value: Option<T>) {
        let mut slot = self.value.borrow_mut();
        if slot.is_none() {
            *slot = Some(value);
            if let Some(w) = self.waiter.take() {
                w.wake();
            }
        }
    }

    /// Waits for the delivery; `None` when the sender gave up.
    pub(crate) async fn wait(&self) -> Option<T> {
        poll_fn(|cx| match self.value.borrow_mut().take() {
            Some(v) => Poll::Ready(v),
            None => {
                self.waiter.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
