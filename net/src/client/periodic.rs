//! The background loops of producers and consumers (route refresh, heartbeats, offset commits):
//! a step run every period as a task on the client's executor.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use tern_runtime::Task;

/// Spawns a task that sleeps `period`, runs `step` on `inner` and starts over, until the task is
/// dropped (the first step runs one period after the spawn).
pub(crate) fn spawn_periodic<T, F, Fut>(inner: &Rc<T>, period: Duration, step: F) -> Task<()>
where
    T: 'static,
    F: Fn(Rc<T>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let inner = Rc::clone(inner);
    tern_runtime::spawn_local(async move {
        loop {
            tern_runtime::sleep(period).await;
            step(Rc::clone(&inner)).await;
        }
    })
}
