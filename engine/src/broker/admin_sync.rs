//! Whole-table reads a slave or an admin tool makes: GET_ALL_CONSUMER_OFFSET (43) and
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201).
//!
//! | request | answered by | body |
//! |---|---|---|
//! | GET_ALL_CONSUMER_OFFSET | the state core (it holds the offsets) | `consumerOffset.json`'s shape: `{"offsetTable":{"<topic>@<group>":{"<queueId>":<offset>}}}` |
//! | GET_ALL_SUBSCRIPTIONGROUP_CONFIG | the receiving core (groups are replicated) | `subscriptionGroup.json`'s shape, plus the `totalGroupNum` header field |

use tern_net::code::response;
use tern_net::transport::Reply;
use tern_net::RemotingCommand;

use super::core::{reply, success, Core};
use super::routing::STATE_CORE;

impl Core {
    /// GET_ALL_CONSUMER_OFFSET on the state core (routed by [`Core::on_offset_admin`]): every
    /// committed offset, as persisted.
    pub(crate) fn all_consumer_offsets(&self, req: &RemotingCommand) -> Reply {
        debug_assert_eq!(self.index, STATE_CORE);
        match serde_json::to_vec(self.offsets.borrow().file()) {
            Ok(body) => Reply::new(success(req).with_body(body)),
            Err(e) => reply(req, response::SYSTEM_ERROR, e.to_string()),
        }
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
