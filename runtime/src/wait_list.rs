//! [`WaitList`]: the tasks of one executor waiting for a condition, woken together.
//!
//! The guarantee that matters is the bound: a waiting future owns at most one entry, which a
//! re-poll updates in place and dropping the future removes. So a task that waits under a timeout
//! again and again (a flusher every 500 ms, a long poll every 15 s) never piles up wakers. A piled
//! up waker is not only memory: glommio counts a task's wakers in an `i16`, and a task holding
//! 32,767 of them panics the executor's timer processing (which is how a waker-per-poll list, and
//! glommio's own shared-channel receiver under a re-polling timeout, took down an idle broker).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Tasks waiting on this executor for something [`wake_all`](WaitList::wake_all) announces.
///
/// Holds at most one entry per live waiting future ([`WaitList::len`] counts them); `!Send`, for
/// use within one executor.
#[derive(Default)]
pub struct WaitList {
    /// (entry key, waker) of each registered waiter, in registration order.
    entries: RefCell<Vec<(u64, Waker)>>,
    next_key: Cell<u64>,
}

impl WaitList {
    /// Wakes every registered waiter and empties the list. A woken waiter whose condition still
    /// does not hold registers again when it is polled.
    pub fn wake_all(&self) {
        let woken = std::mem::take(&mut *self.entries.borrow_mut());
        for (_, w) in woken {
            w.wake();
        }
    }

    /// Registered waiters: never more than the waiting futures alive.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether no waiter is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes once `ready()` returns true; `ready` is checked on every poll, and the future
    /// waits on this list in between. Dropping the future (a timeout, a select) unregisters it.
    pub fn wait_until<F: FnMut() -> bool + Unpin>(&self, ready: F) -> WaitUntil<'_, F> {
        WaitUntil {
            list: self,
            ready,
            key: None,
        }
    }

    /// Registers `waker` under `key` (updating it in place), or under a new key when `key` is
    /// `None` or was removed by a [`wake_all`](WaitList::wake_all); returns the key it is under.
    fn register(&self, key: Option<u64>, waker: &Waker) -> u64 {
        let mut entries = self.entries.borrow_mut();
        if let Some(k) = key {
            if let Some((_, w)) = entries.iter_mut().find(|(e, _)| *e == k) {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                return k;
            }
        }
        let k = self.next_key.get();
        self.next_key.set(k.wrapping_add(1));
        entries.push((k, waker.clone()));
        k
    }

    fn unregister(&self, key: u64) {
        let mut entries = self.entries.borrow_mut();
        if let Some(at) = entries.iter().position(|(e, _)| *e == key) {
            entries.swap_remove(at);
        }
    }
}

/// The future of [`WaitList::wait_until`].
pub struct WaitUntil<'a, F> {
    list: &'a WaitList,
    ready: F,
    key: Option<u64>,
}

impl<F: FnMut() -> bool + Unpin> Future for WaitUntil<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if (this.ready)() {
            if let Some(k) = this.key.take() {
                this.list.unregister(k);
            }
            return Poll::Ready(());
        }
        this.key = Some(this.list.register(this.key, cx.waker()));
        Poll::Pending
    }
}

impl<F> Drop for WaitUntil<'_, F> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.list.unregister(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn a_waiter_timed_out_again_and_again_holds_one_entry_at_most() {
        crate::block_on("wait-list-bound", async {
            let list = WaitList::default();
            for _ in 0..2_000 {
                let done =
                    crate::timeout(Duration::from_micros(1), list.wait_until(|| false)).await;
                assert!(done.is_none());
                assert!(list.is_empty(), "a dropped waiter left its entry");
            }
            // One future polled many times (woken by its own timer each round) keeps one entry.
            let mut fut = Box::pin(list.wait_until(|| false));
            for _ in 0..100 {
                let polled = crate::timeout(Duration::from_micros(1), &mut fut).await;
                assert!(polled.is_none());
                assert_eq!(list.len(), 1);
            }
            drop(fut);
            assert!(list.is_empty());
        })
        .unwrap();
    }

    #[test]
    fn wake_all_completes_every_waiter_whose_condition_holds() {
        crate::block_on("wait-list-wake", async {
            let list = Rc::new(WaitList::default());
            let flag = Rc::new(Cell::new(false));
            let done = Rc::new(Cell::new(0));
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let (list, flag, done) = (Rc::clone(&list), Rc::clone(&flag), Rc::clone(&done));
                tasks.push(crate::spawn_local(async move {
                    list.wait_until(|| flag.get()).await;
                    done.set(done.get() + 1);
                }));
            }
            crate::sleep(Duration::from_millis(5)).await;
            assert_eq!(list.len(), 3);
            // A wake without the condition: they register again, nobody completes.
            list.wake_all();
            crate::sleep(Duration::from_millis(5)).await;
            assert_eq!((done.get(), list.len()), (0, 3));
            flag.set(true);
            list.wake_all();
            for t in tasks {
                t.await;
            }
            assert_eq!((done.get(), list.len()), (3, 0));
        })
        .unwrap();
    }
}
