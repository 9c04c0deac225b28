//! The table dumps a slave copies from its master: GET_ALL_CONSUMER_OFFSET (43),
//! GET_ALL_DELAY_OFFSET (45) and GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201), in RocketMQ's JSON
//! shapes (`consumerOffset.json`, `delayOffset.json`, `subscriptionGroup.json`).
//! GET_ALL_TOPIC_CONFIG (21) is served by the admin handlers; GET_TIMER_CHECK_POINT (60) answers
//! Tern's `timerProgress.json` ([`crate::broker::scheduled`]'s replica module).

use std::rc::Rc;

use tern_net::code::{request, response};
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use crate::broker::core::{reply, success, Core};

impl Core {
    /// Answers 43, 45 and 201 on the state core, where the offsets live ([`Core::handle`]
    /// forwards them there), and 60 on any core (the timer progress file is shared).
    pub(crate) async fn on_table_dump(self: &Rc<Self>, req: RemotingCommand) -> Option<Reply> {
        let body = match req.code {
            request::GET_ALL_CONSUMER_OFFSET => {
                tern_net::body::encode(self.offsets.borrow().file())
            }
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
                tern_net::body::encode(self.groups.borrow().wrapper())
            }
            request::GET_TIMER_CHECK_POINT => match self.timer_progress_table().await {
                Ok(table) => tern_net::body::encode(&table),
                Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
            },
            _ => match self.delay_offset_table().await {
                Ok(table) => tern_net::body::encode(&table),
                Err(e) => return Some(reply(&req, response::SYSTEM_ERROR, e.to_string())),
            },
        };
        Some(Reply::new(success(&req).with_body(body)))
    }
}
