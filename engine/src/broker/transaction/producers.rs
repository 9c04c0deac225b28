//! Producer groups seen in heartbeats (`producerDataSet`), so the transaction check service can
//! reach a live producer of a group. Lives on the state core; a producer is forgotten when its
//! connection closes or it unregisters (RocketMQ's `ProducerManager`).

use std::collections::{BTreeMap, HashMap};

use crate::broker::clients::ConnectionRef;

/// Client ids and connections of every producer group.
#[derive(Debug, Default)]
pub struct ProducerGroups {
    groups: HashMap<String, BTreeMap<String, ConnectionRef>>,
}

impl ProducerGroups {
    /// Records that `client_id`, on `conn`, produces for `group`.
    pub fn heartbeat(&mut self, group: &str, client_id: &str, conn: ConnectionRef) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert(client_id.to_string(), conn);
    }

    /// Forgets `client_id` in `group`.
    pub fn unregister(&mut self, group: &str, client_id: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.remove(client_id);
            if g.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// Forgets every producer on `conn`.
    pub fn connection_closed(&mut self, conn: ConnectionRef) {
        self.groups.retain(|_, g| {
            g.retain(|_, c| *c != conn);
            !g.is_empty()
        });
    }

    /// A live connection of `group` (the client id that sorts first), if any.
    pub fn pick(&self, group: &str) -> Option<ConnectionRef> {
        self.groups.get(group)?.values().next().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_come_and_go() {
        let a = ConnectionRef::new(0, 1);
        let b = ConnectionRef::new(1, 7);
        let mut p = ProducerGroups::default();
        assert_eq!(p.pick("pg"), None);
        p.heartbeat("pg", "c2", b);
        p.heartbeat("pg", "c1", a);
        assert_eq!(p.pick("pg"), Some(a));
        p.connection_closed(a);
        assert_eq!(p.pick("pg"), Some(b));
        p.unregister("pg", "c2");
        assert_eq!(p.pick("pg"), None);
        assert!(p.groups.is_empty());
    }
}
