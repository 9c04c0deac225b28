//! [`ExtFields`]: a command's named header fields (`extFields`), kept in a small vector.
//!
//! A request carries a dozen fields or fewer, read once or twice each, so a vector searched
//! linearly beats a hash map: no table to allocate, no key to hash. Names the protocol uses all
//! the time are interned ([`intern`]): decoding `"topic"` borrows a `&'static str` instead of
//! allocating a `String` for it. Values stay owned `String`s, because typed headers move them out
//! ([`ExtFields::remove`]).

use std::borrow::Cow;

/// A field name: borrowed when it is a known protocol name, owned otherwise.
pub type FieldName = Cow<'static, str>;

/// A command's header fields: at most one value per name, in insertion order (the encoders sort
/// by name, so the wire form does not depend on it). Equality ignores order.
#[derive(Debug, Clone, Default)]
pub struct ExtFields {
    entries: Vec<(FieldName, String)>,
}

impl ExtFields {
    /// No fields.
    pub const fn new() -> Self {
        ExtFields {
            entries: Vec::new(),
        }
    }

    /// No fields, with room for `n` without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        ExtFields {
            entries: Vec::with_capacity(n),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Whether `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: impl Into<FieldName>, value: String) -> Option<String> {
        let name = name.into();
        match self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                self.entries.push((name, value));
                None
            }
        }
    }

    /// Removes `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.entries.iter().position(|(k, _)| k == name)?;
        Some(self.entries.swap_remove(at).1)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every field, keeping the allocation.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Makes room for `n` more fields.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Appends a decoded field without looking for an earlier one of the same name; the decoder
    /// calls [`finish_decoding`](ExtFields::finish_decoding) after the last. Keeps decoding linear
    /// in the number of fields however many a hostile header carries.
    pub(crate) fn push_decoded(&mut self, name: FieldName, value: String) {
        self.entries.push((name, value));
    }

    /// Ends decoding: of several fields with one name the last stays (as a map's insert would),
    /// in `O(n log n)`.
    pub(crate) fn finish_decoding(&mut self) {
        const SMALL: usize = 16;
        let n = self.entries.len();
        if n <= SMALL {
            let mut i = 0;
            while i < self.entries.len() {
                let later = self.entries[i + 1..]
                    .iter()
                    .any(|(k, _)| *k == self.entries[i].0);
                if later {
                    self.entries.remove(i);
                } else {
                    i += 1;
                }
            }
            return;
        }
        // Stable by name, so each name's fields stay in arrival order; keep each run's last.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(FieldName, String)> = Vec::with_capacity(n);
        for entry in self.entries.drain(..) {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        self.entries = kept;
    }

    /// The (name, value) pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// The names, in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.entries.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for ExtFields {}

impl<K: Into<FieldName>> FromIterator<(K, String)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, String)>>(iter: I) -> Self {
        let mut fields = ExtFields::new();
        for (k, v) in iter {
            fields.insert(k, v);
        }
        fields
    }
}

/// Field names interned on decode, sorted for binary search: every name of the requests on the
/// produce and consume paths (SEND_MESSAGE, its V2 one-letter form, PULL_MESSAGE, offsets,
/// heartbeat-adjacent admin) and of their responses. A name not listed is allocated as usual.
const KNOWN: &[&str] = &[
    "MSG_REGION",
    "TRACE_ON",
    "a",
    "b",
    "batch",
    "batchUniqId",
    "bname",
    "bornTimestamp",
    "brokerName",
    "c",
    "commitLog",
    "commitOffset",
    "consumerGroup",
    "d",
    "defaultTopic",
    "defaultTopicQueueNums",
    "e",
    "expressionType",
    "f",
    "flag",
    "forbiddenType",
    "g",
    "groupSysFlag",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "maxMsgBytes",
    "maxMsgNums",
    "maxOffset",
    "minOffset",
    "msgId",
    "n",
    "nextBeginOffset",
    "offset",
    "offsetDelta",
    "producerGroup",
    "properties",
    "queueId",
    "queueOffset",
    "recallHandle",
    "reconsumeTimes",
    "subVersion",
    "subscription",
    "suggestWhichBrokerId",
    "suspendTimeoutMillis",
    "sysFlag",
    "topic",
    "topicSysFlag",
    "transactionId",
    "unitMode",
];

/// `name` as a [`FieldName`]: a borrowed static string when it is a [`KNOWN`] protocol name.
pub(crate) fn intern(name: &str) -> FieldName {
    match KNOWN.binary_search(&name) {
        Ok(i) => Cow::Borrowed(KNOWN[i]),
        Err(_) => Cow::Owned(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_names_are_sorted_and_unique() {
        assert!(KNOWN.windows(2).all(|w| w[0] < w[1]), "{KNOWN:?}");
    }

    #[test]
    fn known_names_are_borrowed_and_others_owned() {
        assert!(matches!(intern("topic"), Cow::Borrowed("topic")));
        assert!(matches!(intern("a"), Cow::Borrowed("a")));
        assert!(matches!(intern("noSuchField"), Cow::Owned(_)));
    }

    #[test]
    fn behaves_as_a_map_with_one_value_per_name() {
        let mut f = ExtFields::new();
        assert_eq!(f.insert("topic", "A".into()), None);
        assert_eq!(f.insert(String::from("queueId"), "1".into()), None);
        assert_eq!(f.insert("topic", "B".into()), Some("A".into()));
        assert_eq!(f.len(), 2);
        assert_eq!(f.get("topic").map(String::as_str), Some("B"));
        assert!(f.contains_key("queueId"));
        assert_eq!(f.remove("queueId"), Some("1".into()));
        assert_eq!(f.remove("queueId"), None);
        assert_eq!(f.keys().collect::<Vec<_>>(), ["topic"]);
        let other: ExtFields = [("topic", String::from("B"))].into_iter().collect();
        assert_eq!(f, other);
        f.clear();
        assert!(f.is_empty());
        assert_ne!(f, other);
    }

    #[test]
    fn decoding_keeps_the_last_of_repeated_names_at_any_size() {
        for n in [3usize, 40, 5_000] {
            let mut f = ExtFields::new();
            for i in 0..n {
                f.push_decoded(intern(&format!("k{}", i % 7)), i.to_string());
            }
            f.finish_decoding();
            assert_eq!(f.len(), 7.min(n), "{n}");
            for k in 0..7.min(n) {
                let last = (0..n).rev().find(|i| i % 7 == k).unwrap();
                assert_eq!(f.get(&format!("k{k}")), Some(&last.to_string()), "{n} k{k}");
            }
        }
    }

    #[test]
    fn equality_ignores_order() {
        let a: ExtFields = [("x", "1".to_string()), ("y", "2".to_string())]
            .into_iter()
            .collect();
        let b: ExtFields = [("y", "2".to_string()), ("x", "1".to_string())]
            .into_iter()
            .collect();
        assert_eq!(a, b);
    }
}
