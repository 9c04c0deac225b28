//! Single-executor synchronisation (no locks, `!Send`): a one-shot slot for replies to forwarded
//! requests, a latch for "the core is ready", and a generation signal that long-polling pulls wait
//! on.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use tern_runtime::WaitList;

/// A value delivered once from one task to another.
pub struct Slot<T> {
    value: RefCell<Option<T>>,
    waiter: Cell<Option<Waker>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: RefCell::new(None),
            waiter: Cell::new(None),
        }
    }
}

impl<T> Slot<T> {
    /// Delivers `value`, waking the waiter; a second delivery replaces an untaken first.
    pub fn put(&self, value: T) {
        *self.value.borrow_mut() = Some(value);
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    /// Waits for the value.
    pub async fn take(&self) -> T {
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

/// Closed until [`open`](Latch::open), then open forever.
#[derive(Default)]
pub struct Latch {
    open: Cell<bool>,
    waiters: WaitList,
}

impl Latch {
    /// Opens the latch and wakes every waiter.
    pub fn open(&self) {
        self.open.set(true);
        self.waiters.wake_all();
    }

    /// Waits until the latch is open.
    pub async fn wait(&self) {
        self.waiters.wait_until(|| self.open.get()).await
    }
}

/// A counter that waiters watch for change. A waiter dropped before the change (a timed-out long
/// poll) leaves nothing behind: see [`WaitList`].
#[derive(Default)]
pub struct Signal {
    generation: Cell<u64>,
    waiters: WaitList,
}

impl Signal {
    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Advances the generation and wakes every waiter.
    pub fn fire(&self) {
        self.generation.set(self.generation.get() + 1);
        self.waiters.wake_all();
    }

    /// Waits until the generation differs from `seen`.
    pub async fn changed_since(&self, seen: u64) {
        self.waiters
            .wait_until(|| self.generation.get() != seen)
            .await
    }

    /// Waiters registered now (at most one per waiting future).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

/// A value that only grows, with waiters for "it has reached at least `n`": the state core keeps
/// the topic-table generation last registered with the nameservers in one, so a request that
/// created a topic can wait until the nameservers know it.
#[derive(Default)]
pub struct Watermark {
    value: Cell<u64>,
    waiters: WaitList,
}

impl Watermark {
    /// Raises the value to `value` (never lowers it) and wakes the waiters.
    pub fn advance_to(&self, value: u64) {
        if value > self.value.get() {
            self.value.set(value);
            self.waiters.wake_all();
        }
    }

    /// Completes once the value is at least `target`.
    pub async fn reached(&self, target: u64) {
        self.waiters.wait_until(|| self.value.get() >= target).await
    }
}

/// Per-queue arrival signals for suspended pulls (RocketMQ's PullRequestHoldService, event
/// driven): a pull that found nothing waits on its queue's signal; a stored message fires it.
#[derive(Default)]
pub struct ArrivalSignals {
    queues: RefCell<HashMap<String, HashMap<i32, Rc<Signal>>>>,
}

impl ArrivalSignals {
    /// The signal of `(topic, queue_id)`, created on first use.
    pub fn signal(&self, topic: &str, queue_id: i32) -> Rc<Signal> {
        let mut queues = self.queues.borrow_mut();
        if let Some(s) = queues.get(topic).and_then(|q| q.get(&queue_id)) {
            return Rc::clone(s);
        }
        let s = Rc::new(Signal::default());
        queues
            .entry(topic.to_string())
            .or_default()
            .insert(queue_id, Rc::clone(&s));
        s
    }

    /// A message arrived on `(topic, queue_id)`: wakes its waiters. Signals nobody holds are dropped.
    pub fn arrived(&self, topic: &str, queue_id: i32) {
        let mut queues = self.queues.borrow_mut();
        let Some(q) = queues.get_mut(topic) else {
            return;
        };
        if let Some(s) = q.get(&queue_id) {
            s.fire();
            if Rc::strong_count(s) == 1 {
                q.remove(&queue_id);
            }
        }
        if q.is_empty() {
            queues.remove(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn arrival_wakes_a_waiting_pull() {
        tern_runtime::block_on("sync", async {
            let signals = Rc::new(ArrivalSignals::default());
            let s = signals.signal("T", 1);
            let seen = s.generation();
            let waiter = tern_runtime::spawn_local(async move {
                tern_runtime::timeout(Duration::from_secs(5), s.changed_since(seen)).await
            });
            tern_runtime::yield_if_needed().await;
            signals.arrived("T", 0); // other queue: no effect
            signals.arrived("T", 1);
            assert!(waiter.await.is_some());
            // Nobody holds the signal any more: the next arrival drops it.
            signals.arrived("T", 1);
            assert!(signals.queues.borrow().is_empty());

            let slot = Rc::new(Slot::default());
            let l = Rc::new(Latch::default());
            let (s2, l2) = (Rc::clone(&slot), Rc::clone(&l));
            let t = tern_runtime::spawn_local(async move {
                l2.wait().await;
                s2.take().await
            });
            l.open();
            slot.put(7);
            assert_eq!(t.await, 7);
        })
        .unwrap();
    }

    #[test]
    fn long_polls_that_time_out_leave_no_waiter_behind() {
        tern_runtime::block_on("sync-timeouts", async {
            let s = Signal::default();
            let seen = s.generation();
            for _ in 0..1_000 {
                let r =
                    tern_runtime::timeout(Duration::from_micros(1), s.changed_since(seen)).await;
                assert!(r.is_none());
            }
            assert_eq!(s.waiting(), 0);
        })
        .unwrap();
    }

    #[test]
    fn a_watermark_releases_waiters_at_or_below_it_only() {
        tern_runtime::block_on("sync-watermark", async {
            let w = Rc::new(Watermark::default());
            let (w1, w3) = (Rc::clone(&w), Rc::clone(&w));
            let one = tern_runtime::spawn_local(async move { w1.reached(1).await });
            let three = tern_runtime::spawn_local(async move {
                tern_runtime::timeout(Duration::from_millis(50), w3.reached(3)).await
            });
            tern_runtime::yield_if_needed().await;
            w.advance_to(2);
            w.advance_to(1); // never lowers
            one.await;
            assert!(three.await.is_none(), "2 does not reach 3");
            tern_runtime::timeout(Duration::from_secs(5), w.reached(2))
                .await
                .expect("2 reaches 2");
        })
        .unwrap();
    }
}
