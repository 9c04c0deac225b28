//! The table of a store's ConsumeQueues, keyed by topic then queue id, loaded from
//! `<root>/consumequeue/<topic>/<queueId>/` and grown on first put.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use crate::consume_queue::{ConsumeQueue, CqError};

/// Whether `topic` may name a ConsumeQueue directory: 1..=127 bytes of `[A-Za-z0-9%|_-]`
/// (RocketMQ's `TopicValidator` character set), which also rules out path tricks like `..`.
pub(crate) fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= crate::message::MAX_TOPIC_LEN
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
}

/// Every ConsumeQueue of one store.
pub(crate) struct QueueTable {
    root: PathBuf,
    entries_per_file: usize,
    topics: HashMap<String, BTreeMap<i32, ConsumeQueue>>,
}

impl QueueTable {
    /// Opens every queue found under `<root>/consumequeue`. Directories that are not a valid topic
    /// or queue id are skipped with a warning.
    pub(crate) fn load(root: &Path, entries_per_file: usize) -> Result<Self, CqError> {
        let mut table = QueueTable {
            root: root.to_path_buf(),
            entries_per_file,
            topics: HashMap::new(),
        };
        let base = root.join("consumequeue");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CqError::Io { path, source }
        };
        fs::create_dir_all(&base).map_err(io(&base))?;
        for topic_dir in fs::read_dir(&base).map_err(io(&base))? {
            let topic_dir = topic_dir.map_err(io(&base))?;
            let name = topic_dir.file_name();
            let Some(topic) = name.to_str().filter(|t| is_valid_topic(t)) else {
                tracing::warn!(path = %topic_dir.path().display(), "skipping non-topic directory");
                continue;
            };
            for q in fs::read_dir(topic_dir.path()).map_err(io(&topic_dir.path()))? {
                let q = q.map_err(io(&topic_dir.path()))?;
                let Some(qid) = q.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    tracing::warn!(path = %q.path().display(), "skipping non-queue directory");
                    continue;
                };
                let cq = ConsumeQueue::open(root, topic, qid, entries_per_file)?;
                table
                    .topics
                    .entry(topic.to_string())
                    .or_default()
                    .insert(qid, cq);
            }
        }
        Ok(table)
    }

    /// The queue, if it exists.
    pub(crate) fn get(&self, topic: &str, queue_id: i32) -> Option<&ConsumeQueue> {
        self.topics.get(topic)?.get(&queue_id)
    }

    /// The queue, if it exists, mutably.
    pub(crate) fn get_mut(&mut self, topic: &str, queue_id: i32) -> Option<&mut ConsumeQueue> {
        self.topics.get_mut(topic)?.get_mut(&queue_id)
    }

    /// The queue, created (empty) when missing. `topic` must satisfy [`is_valid_topic`].
    pub(crate) fn get_or_create(
        &mut self,
        topic: &str,
        queue_id: i32,
    ) -> Result<&mut ConsumeQueue, CqError> {
        debug_assert!(is_valid_topic(topic));
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_string(), BTreeMap::new());
        }
        let queues = self
            .topics
            .get_mut(topic)
            .expect("the topic's map was inserted just above");
        match queues.entry(queue_id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(v) => Ok(v.insert(ConsumeQueue::open(
                &self.root,
                topic,
                queue_id,
                self.entries_per_file,
            )?)),
        }
    }

    /// Every queue, mutably, with its topic and id.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, i32, &mut ConsumeQueue)> {
        self.topics
            .iter_mut()
            .flat_map(|(t, qs)| qs.iter_mut().map(move |(q, cq)| (t.as_str(), *q, cq)))
    }

    /// Every queue with its topic and id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, i32, &ConsumeQueue)> {
        self.topics
            .iter()
            .flat_map(|(t, qs)| qs.iter().map(move |(q, cq)| (t.as_str(), *q, cq)))
    }

    /// Removes a topic's queues from the table and deletes their files. Returns whether the topic
    /// existed.
    pub(crate) fn remove_topic(&mut self, topic: &str) -> Result<bool, CqError> {
        let Some(queues) = self.topics.remove(topic) else {
            return Ok(false);
        };
        drop(queues);
        let dir = self.root.join("consumequeue").join(topic);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(source) => Err(CqError::Io { path: dir, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(is_valid_topic("TopicTest"));
        assert!(is_valid_topic("%RETRY%group|x-1_2"));
        assert!(!is_valid_topic(""));
        assert!(!is_valid_topic(".."));
        assert!(!is_valid_topic("a/b"));
        assert!(!is_valid_topic("a.b"));
        assert!(!is_valid_topic(&"x".repeat(128)));
    }
}
