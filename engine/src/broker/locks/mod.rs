//! Orderly-consumption queue locks: LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42), and the refusal
//! of pulls of a queue locked by another client of the group.
//!
//! ## Where locks live
//! The state core ([`STATE_CORE`]) decides every lock (rules and bodies in [`table`]); requests
//! arriving elsewhere are forwarded there with the client connection's address. Each decision is
//! broadcast to every core ([`MeshMsg::Locks`]), the way subscriptions are, so the core owning a
//! queue checks a pull against its own copy: no pull waits for another core. A lock change and a
//! pull racing on different cores may see the copy one mesh hop late, which the clients tolerate
//! (they renew every 20 s and locks live 60 s).
//!
//! ## Who may pull
//! A holder is known by its client id and by the `ip:port` of the connection it locked from (pull
//! requests carry no client id; RocketMQ clients use one connection per broker). While a queue is
//! locked, unexpired, pulls of it for the same group from any other connection get NO_PERMISSION
//! ("the queue is locked by another client"). Apache RocketMQ brokers do not refuse such pulls;
//! a stock client treats any code other than the four pull outcomes as a broker exception and
//! retries the pull after its exception delay (3 s), which is the desired back-off. Pulls of other
//! groups, of unlocked or expired queues, and by the holder are served as before. Locks are not
//! released when a connection closes: they expire (`rebalanceLockMaxLiveTime`, 60 s), as in
//! RocketMQ.

mod table;

use std::rc::Rc;
use std::time::Instant;

use tern_net::code::{request, response};
use tern_net::header::PullMessageRequestHeader;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use table::{LockBatchRequestBody, LockBatchResponseBody};
pub(crate) use table::{LockChange, LockTable};

use super::core::{reply, success, Core, MeshMsg, Origin, ORIGIN_ADDR};
use super::routing::STATE_CORE;

impl Core {
    pub(crate) async fn on_lock_request(
        self: &Rc<Self>,
        mut req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if let Origin::Local(conn) = origin {
            req.ext_fields.insert(ORIGIN_ADDR, conn.peer.to_string());
        }
        if self.index != STATE_CORE {
            return self.run_on(STATE_CORE, req, origin).await;
        }
        let body: LockBatchRequestBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return Some(reply(
                    &req,
                    response::SYSTEM_ERROR,
                    format!("malformed lock body: {e}"),
                ))
            }
        };
        let addr = req.ext(ORIGIN_ADDR).unwrap_or_default();
        if req.code == request::LOCK_BATCH_MQ {
            let (held, changes) = self.locks.borrow_mut().try_lock(
                &body.consumer_group,
                &body.client_id,
                addr,
                &body.mq_set,
                Instant::now(),
                self.config.rebalance_lock_max_live_time,
            );
            self.publish_lock_changes(changes);
            let rsp = LockBatchResponseBody {
                lock_ok_mq_set: held,
            };
            let bytes = serde_json::to_vec(&rsp).unwrap_or_default();
            return Some(Reply::new(success(&req).with_body(bytes)));
        }
        let changes =
            self.locks
                .borrow_mut()
                .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
        self.publish_lock_changes(changes);
        Some(Reply::new(success(&req)))
    }

    fn publish_lock_changes(&self, changes: Vec<LockChange>) {
        if !changes.is_empty() {
            self.broadcast(|| MeshMsg::Locks(changes.clone()));
        }
    }

    /// Applies lock changes decided by the state core (mesh).
    pub(crate) fn apply_lock_changes(&self, changes: Vec<LockChange>) {
        let mut locks = self.locks.borrow_mut();
        for c in changes {
            locks.apply(c);
        }
    }

    /// Adds the client's address to a pull about to be forwarded, when any lock exists.
    pub(crate) fn mark_pull_origin(&self, req: &mut RemotingCommand, origin: Origin<'_>) {
        if let Origin::Local(conn) = origin {
            if !self.locks.borrow().is_empty() {
                req.ext_fields.insert(ORIGIN_ADDR, conn.peer.to_string());
            }
        }
    }

    /// The refusal of a pull of a queue another client of the group holds; `None` to serve it.
    pub(crate) fn refuse_locked_pull(
        &self,
        req: &RemotingCommand,
        h: &PullMessageRequestHeader,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        let locks = self.locks.borrow();
        if locks.is_empty() {
            return None;
        }
        let addr = match origin {
            Origin::Local(conn) => conn.peer.to_string(),
            Origin::Forwarded => req.ext(ORIGIN_ADDR)?.to_string(),
        };
        let holder = locks.held_by_other(
            &h.consumer_group,
            &h.topic,
            h.queue_id,
            &addr,
            Instant::now(),
        )?;
        Some(reply(
            req,
            response::NO_PERMISSION,
            format!(
                "the queue is locked by another client of the group: {}:{} of {} is held by {}",
                h.topic, h.queue_id, h.consumer_group, holder.client_id
            ),
        ))
    }
}
