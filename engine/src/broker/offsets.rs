//! Committed consumer offsets and the `consumerOffset.json` file:
//! `{"offsetTable":{"<topic>@<group>":{"<queueId>":<offset>, ...}, ...}}`.
//!
//! The table lives on the state core (see the broker module docs); other cores forward commits to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Separator of the `topic@group` key.
pub const KEY_SEPARATOR: char = '@';

/// The persisted shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetFile {
    /// `topic@group` → queue id → committed offset.
    pub offset_table: HashMap<String, BTreeMap<i32, i64>>,
}

/// Committed offsets by (topic, group, queue).
#[derive(Debug, Clone, Default)]
pub struct OffsetTable {
    file: OffsetFile,
    dirty: bool,
}

fn key(topic: &str, group: &str) -> String {
    let mut k = String::with_capacity(topic.len() + group.len() + 1);
    k.push_str(topic);
    k.push(KEY_SEPARATOR);
    k.push_str(group);
    k
}

impl OffsetTable {
    /// A table holding what was persisted.
    pub fn from_persisted(file: OffsetFile) -> Self {
        OffsetTable { file, dirty: false }
    }

    /// Records `offset` as the group's committed offset of the queue.
    pub fn commit(&mut self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let slot = self
            .file
            .offset_table
            .entry(key(topic, group))
            .or_default()
            .entry(queue_id)
            .or_insert(offset);
        *slot = offset;
        self.dirty = true;
    }

    /// The group's committed offset of the queue, if any.
    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.file
            .offset_table
            .get(&key(topic, group))?
            .get(&queue_id)
            .copied()
    }

    /// Drops every offset of `topic` (topic deleted).
    pub fn remove_topic(&mut self, topic: &str) {
        let before = self.file.offset_table.len();
        self.file
            .offset_table
            .retain(|k, _| k.rsplit_once(KEY_SEPARATOR).map(|(t, _)| t) != Some(topic));
        self.dirty |= self.file.offset_table.len() != before;
    }

    /// Drops every offset of `group` (group deleted with `cleanOffset`).
    pub fn remove_group(&mut self, group: &str) {
        let before = self.file.offset_table.len();
        self.file
            .offset_table
            .retain(|k, _| k.rsplit_once(KEY_SEPARATOR).map(|(_, g)| g) != Some(group));
        self.dirty |= self.file.offset_table.len() != before;
    }

    /// The groups with committed offsets for `topic`, sorted.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let mut groups: Vec<String> = self
            .file
            .offset_table
            .keys()
            .filter_map(|k| k.rsplit_once(KEY_SEPARATOR))
            .filter(|(t, _)| *t == topic)
            .map(|(_, g)| g.to_string())
            .collect();
        groups.sort();
        groups
    }

    /// Copies `src`'s committed offsets of `topic` to `dest` (CLONE_GROUP_OFFSET); false when `src`
    /// has none for it.
    pub fn clone_offsets(&mut self, src: &str, dest: &str, topic: &str) -> bool {
        let Some(queues) = self.file.offset_table.get(&key(topic, src)).cloned() else {
            return false;
        };
        self.file.offset_table.insert(key(topic, dest), queues);
        self.dirty = true;
        true
    }

    /// The topics `group` has committed offsets for, sorted.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let mut topics: Vec<String> = self
            .file
            .offset_table
            .keys()
            .filter_map(|k| k.rsplit_once(KEY_SEPARATOR))
            .filter(|(_, g)| *g == group)
            .map(|(t, _)| t.to_string())
            .collect();
        topics.sort();
        topics
    }

    /// Every group with committed offsets (of any topic), sorted.
    pub fn groups(&self) -> BTreeSet<String> {
        self.file
            .offset_table
            .keys()
            .filter_map(|k| k.rsplit_once(KEY_SEPARATOR).map(|(_, g)| g.to_string()))
            .collect()
    }

    /// The persisted form, and clears the dirty mark; `None` when nothing changed since last time.
    pub fn take_dirty(&mut self) -> Option<&OffsetFile> {
        if std::mem::take(&mut self.dirty) {
            Some(&self.file)
        } else {
            None
        }
    }

    /// The persisted form.
    pub fn file(&self) -> &OffsetFile {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_query_and_file_shape() {
        let mut t = OffsetTable::default();
        assert_eq!(t.query("g", "T", 0), None);
        t.commit("g", "T", 0, 5);
        t.commit("g", "T", 0, 7);
        t.commit("g", "T", 1, 2);
        assert_eq!(t.query("g", "T", 0), Some(7));
        t.commit("g2", "U", 0, 1);
        assert_eq!(t.topics_of_group("g"), vec!["T".to_string()]);
        assert_eq!(t.topics_of_group("g2"), vec!["U".to_string()]);
        t.remove_topic("U");
        let json = serde_json::to_string(t.take_dirty().unwrap()).unwrap();
        assert_eq!(json, r#"{"offsetTable":{"T@g":{"0":7,"1":2}}}"#);
        assert!(t.take_dirty().is_none());
        let back: OffsetFile = serde_json::from_str(&json).unwrap();
        let t2 = OffsetTable::from_persisted(back);
        assert_eq!(t2.query("g", "T", 1), Some(2));
        assert_eq!(t.groups_of_topic("T"), vec!["g".to_string()]);
        assert!(t.clone_offsets("g", "g3", "T"));
        assert!(!t.clone_offsets("nobody", "g3", "T"));
        assert_eq!(t.query("g3", "T", 1), Some(2));
        t.remove_group("g3");
        assert_eq!(t.query("g3", "T", 1), None);
        t.remove_topic("T");
        assert_eq!(t.query("g", "T", 0), None);
    }
}
