//! Cross-core messaging: a full mesh of bounded channels between a fixed set of executors, with
//! sender-side batching.
//!
//! ## How it is used
//! Build one [`Mesh`] for `n` executors before starting them, hand a clone to each, and call
//! [`Mesh::join`] on every executor; `join` completes once all `n` have joined and returns that
//! executor's [`MeshPort`]. A port's [`MeshPort::index`] (0..n) is its position in the mesh, the same
//! on every executor, so it can serve as the core number.
//!
//! ## Batching
//! A cross-core wakeup costs tens to hundreds of microseconds, so messages are not sent one per
//! channel slot. [`MeshPort::send`] only appends to a local outbox for the destination and never
//! waits; one flusher task per destination moves the whole outbox as one `Vec` into the channel.
//! While a batch is in flight (the channel is full or the peer is slow to wake), later messages pile
//! up and leave together in the next batch. Order between one sender and one destination is kept.
//!
//! ## Delivery
//! [`MeshPort::serve`] starts one task per source that calls the given function for every message,
//! in order. Messages to a destination whose executor has stopped are dropped (logged by the count
//! returned from [`MeshPort::dropped`]); a request/response protocol on top needs its own timeouts.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::{GlommioError, ResourceType};

/// How often a flusher re-tries a full channel.
const FULL_CHANNEL_RETRY: std::time::Duration = std::time::Duration::from_micros(200);

/// Why joining a mesh failed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// More executors tried to join than the mesh was built for, or glommio refused the join.
    #[error("cannot join the channel mesh: {0}")]
    Join(String),
}

/// A mesh under construction; clone it into every executor that will [`join`](Mesh::join) it.
pub struct Mesh<T: Send + 'static> {
    builder: MeshBuilder<Vec<T>, Full>,
}

impl<T: Send + 'static> Clone for Mesh<T> {
    fn clone(&self) -> Self {
        Mesh {
            builder: self.builder.clone(),
        }
    }
}

impl<T: Send + 'static> Mesh<T> {
    /// A mesh for `peers` executors whose channels hold up to `capacity` batches each.
    pub fn new(peers: usize, capacity: usize) -> Self {
        Mesh {
            builder: MeshBuilder::full(peers, capacity.max(1)),
        }
    }

    /// Number of executors the mesh connects.
    pub fn peers(&self) -> usize {
        self.builder.nr_peers()
    }

    /// Joins the mesh from the current executor; waits until every peer has joined. Must be called
    /// once per executor, on an executor.
    pub async fn join(self) -> Result<MeshPort<T>, MeshError> {
        let peers = self.builder.nr_peers();
        let (senders, receivers) = self
            .builder
            .join()
            .await
            .map_err(|e| MeshError::Join(e.to_string()))?;
        let index = senders.peer_id();
        let senders = Rc::new(senders);
        let dropped = Rc::new(Cell::new(0u64));
        let outboxes: Vec<Rc<Outbox<T>>> = (0..peers).map(|_| Rc::new(Outbox::new())).collect();
        for (to, outbox) in outboxes.iter().enumerate() {
            if to != index {
                crate::spawn_local(flush_loop(
                    Rc::clone(&senders),
                    to,
                    Rc::clone(outbox),
                    Rc::clone(&dropped),
                ))
                .detach();
            }
        }
        Ok(MeshPort {
            index,
            outboxes,
            receivers: RefCell::new(Some(receivers)),
            dropped,
        })
    }
}

/// One executor's end of a joined [`Mesh`]. Not `Send`: it lives on the executor that joined.
pub struct MeshPort<T: Send + 'static> {
    index: usize,
    outboxes: Vec<Rc<Outbox<T>>>,
    receivers: RefCell<Option<glommio::channels::channel_mesh::Receivers<Vec<T>>>>,
    dropped: Rc<Cell<u64>>,
}

impl<T: Send + 'static> MeshPort<T> {
    /// This executor's position in the mesh (0..[`peers`](Self::peers)), the same on every peer.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of executors in the mesh.
    pub fn peers(&self) -> usize {
        self.outboxes.len()
    }

    /// Queues `msg` for executor `to` without waiting. Gives the message back when `to` is this
    /// executor, out of range, or its outbox was closed by [`close`](Self::close).
    pub fn send(&self, to: usize, msg: T) -> Result<(), T> {
        if to == self.index {
            return Err(msg);
        }
        match self.outboxes.get(to) {
            Some(outbox) => outbox.push(msg),
            None => Err(msg),
        }
    }

    /// Messages that could not be delivered because their destination had stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Starts delivering incoming messages: `deliver(from, msg)` runs for each, in arrival order per
    /// source. Only the first call has an effect.
    pub fn serve(&self, deliver: impl Fn(usize, T) + 'static) {
        let Some(mut receivers) = self.receivers.borrow_mut().take() else {
            return;
        };
        let deliver = Rc::new(deliver);
        for (from, rx) in receivers.streams() {
            let deliver = Rc::clone(&deliver);
            crate::spawn_local(async move {
                // One `recv` future per batch, polled only when glommio wakes it. Not re-polled on
                // a timer: glommio's receiver adds a waker for every pending poll and releases
                // them only as messages arrive, so each timed re-poll of an idle channel leaks
                // one, and at 32,767 the task's waker count overflows and glommio panics.
                while let Some(batch) = rx.recv().await {
                    for msg in batch {
                        deliver(from, msg);
                    }
                    crate::yield_if_needed().await;
                }
            })
            .detach();
        }
    }

    /// Stops sending: queued messages are still flushed, later [`send`](Self::send)s fail, and peers'
    /// serve tasks for this source end once the channel drains.
    pub fn close(&self) {
        for outbox in &self.outboxes {
            outbox.close();
        }
    }
}

impl<T: Send + 'static> Drop for MeshPort<T> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Messages waiting to be flushed to one destination, and the flusher's waker.
struct Outbox<T> {
    items: RefCell<Vec<T>>,
    flusher: Cell<Option<Waker>>,
    closed: Cell<bool>,
}

impl<T> Outbox<T> {
    fn new() -> Self {
        Outbox {
            items: RefCell::new(Vec::new()),
            flusher: Cell::new(None),
            closed: Cell::new(false),
        }
    }

    fn push(&self, msg: T) -> Result<(), T> {
        if self.closed.get() {
            return Err(msg);
        }
        self.items.borrow_mut().push(msg);
        if let Some(w) = self.flusher.take() {
            w.wake();
        }
        Ok(())
    }

    fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.flusher.take() {
            w.wake();
        }
    }

    /// Waits for queued messages and takes them all; `None` once closed and empty.
    async fn take_batch(&self) -> Option<Vec<T>> {
        poll_fn(|cx| {
            let mut items = self.items.borrow_mut();
            if !items.is_empty() {
                return Poll::Ready(Some(std::mem::take(&mut *items)));
            }
            if self.closed.get() {
                return Poll::Ready(None);
            }
            self.flusher.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

async fn flush_loop<T: Send + 'static>(
    senders: Rc<Senders<Vec<T>>>,
    to: usize,
    outbox: Rc<Outbox<T>>,
    dropped: Rc<Cell<u64>>,
) {
    while let Some(mut batch) = outbox.take_batch().await {
        let n = batch.len() as u64;
        // Not `send_to().await`: its wait for room has the same lost-wakeup race as the
        // receiver's (see `serve`), so a full channel is re-tried on a short timer instead.
        loop {
            match senders.try_send_to(to, batch) {
                Ok(()) => break,
                Err(GlommioError::WouldBlock(ResourceType::Channel(back))) => {
                    batch = back;
                    crate::sleep(FULL_CHANNEL_RETRY).await;
                }
                Err(_) => {
                    dropped.set(dropped.get() + n);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Each of three executors sends numbered messages to both others; every receiver sees each
    /// source's messages complete and in order, and replies travel back.
    #[test]
    fn full_mesh_delivers_in_order_per_source() {
        full_mesh_run::<2>();
    }

    /// Three executors on this 2-core machine. Under heavy load (six busy-looping processes
    /// beside it) this and the two-executor test failed or hung in about one run in four, with
    /// an executor asleep in glommio's `link_rings_and_sleep` past its own timers; the
    /// [`crate::WakeWatchdog`] that every executor now runs wakes it (0 failures in 30 runs).
    #[test]
    fn full_mesh_of_three_delivers_in_order_per_source() {
        full_mesh_run::<3>();
    }

    fn full_mesh_run<const N: usize>() {
        const PER_PEER: u64 = 500;
        let mesh: Mesh<(usize, u64)> = Mesh::new(N, 8);
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let mesh = mesh.clone();
                let finished = std::sync::Arc::clone(&finished);
                crate::spawn_executor(&format!("mesh{i}"), None, move || async move {
                    let port = mesh.join().await.expect("join");
                    let me = port.index();
                    let seen: Rc<RefCell<Vec<Vec<u64>>>> =
                        Rc::new(RefCell::new(vec![Vec::new(); N]));
                    let sink = Rc::clone(&seen);
                    port.serve(move |from, (src, seq)| {
                        assert_eq!(from, src);
                        sink.borrow_mut()[from].push(seq);
                    });
                    for seq in 0..PER_PEER {
                        for to in (0..N).filter(|&t| t != me) {
                            port.send(to, (me, seq)).expect("send");
                        }
                        if seq % 50 == 0 {
                            crate::yield_if_needed().await;
                        }
                    }
                    assert!(port.send(me, (me, 0)).is_err(), "no sends to self");
                    // Wait until every other peer's messages have arrived.
                    let done = || {
                        let seen = seen.borrow();
                        (0..N)
                            .filter(|&p| p != me)
                            .all(|p| seen[p].len() == PER_PEER as usize)
                    };
                    let arrived = crate::timeout(Duration::from_secs(10), async {
                        while !done() {
                            crate::sleep(Duration::from_millis(1)).await;
                        }
                    })
                    .await;
                    assert!(
                        arrived.is_some(),
                        "messages missing on {me}: {:?} of {PER_PEER}, dropped {}",
                        seen.borrow().iter().map(Vec::len).collect::<Vec<_>>(),
                        port.dropped()
                    );
                    {
                        let seen = seen.borrow();
                        for p in (0..N).filter(|&p| p != me) {
                            assert!(seen[p].iter().copied().eq(0..PER_PEER), "order from {p}");
                        }
                    }
                    // Keep this executor (and its flushers) alive until every peer got everything.
                    use std::sync::atomic::Ordering;
                    finished.fetch_add(1, Ordering::SeqCst);
                    // Bounded, so a peer that failed its assertions fails the test instead of
                    // hanging it.
                    let waited = std::time::Instant::now();
                    while finished.load(Ordering::SeqCst) < N
                        && waited.elapsed() < Duration::from_secs(30)
                    {
                        crate::sleep(Duration::from_millis(1)).await;
                    }
                    me
                })
                .expect("start")
            })
            .collect();
        let mut ids: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..N).collect::<Vec<_>>());
    }
}
