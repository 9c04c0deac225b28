//! Whole-table reads a slave or an admin tool makes: GET_ALL_CONSUMER_OFFSET (43) and
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201).
//!
//! | request | answered by | body |
//! |---|---|---|
//! | GET_ALL_CONSUMER_OFFSET | the state core (it holds the offsets) | `consumerOffset.json`'s shape: `{"offsetTable":{"<topic>@<group>":{"<queueId>":<offset>}}}` |
//! | GET_ALL_SUBSCRIPTIONGROUP_CONFIG | the receiving core (groups are replicated) | `subscriptionGroup.json`'s shape, plus the `totalGroupNum` header field |

use std::rc::Rc;

use tern_net::code::response;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::core::{reply, success, Core, Origin};
use super::routing::STATE_CORE;

impl Core {
    /// GET_ALL_CONSUMER_OFFSET: every committed offset, as persisted.
    pub(crate) async fn on_get_all_consumer_offset(
        self: &Rc<Self>,
        req: RemotingCommand,
        origin: Origin<'_>,
    ) -> Option<Reply> {
        if self.index != STATE_CORE {
            return self.run_on(STATE_CORE, req, origin).await;
        }
        let body = serde_json::to_vec(self.offsets.borrow().file());
        Some(match body {
            Ok(body) => Reply::new(success(&req).with_body(body)),
            Err(e) => reply(&req, response::SYSTEM_ERROR, e.to_string()),
        })
    }

    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG: every subscription group with the table's data version.
    pub(crate) fn on_get_all_subscription_groups(&self, req: &RemotingCommand) -> Reply {
        let groups = self.groups.borrow();
        let wrapper = groups.wrapper();
        match serde_json::to_vec(wrapper) {
            Ok(body) => Reply::new(
                success(req)
                    .with_ext(
                        "totalGroupNum",
                        wrapper.subscription_group_table.len().to_string(),
                    )
                    .with_body(body),
            ),
            Err(e) => reply(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }
}
