//! Tag sub-expressions (RocketMQ `SubscriptionData` of type TAG): which messages a subscription
//! selects.
//!
//! | expression | selects |
//! |---|---|
//! | empty, `*` | every message |
//! | `TagA` | messages tagged exactly `TagA` |
//! | `TagA \|\| TagB` | either tag; items are split on `\|\|` and trimmed, empty items dropped |
//!
//! Filtering is two-step, as in RocketMQ: the ConsumeQueue's tag hash code screens entries without
//! reading the CommitLog ([`TagFilter::matches_hash`]), then the stored message's actual tag is
//! checked ([`TagFilter::matches_tag`]) so hash collisions are not delivered.

use tern_store::consume_queue::tag_hash_code;

/// The expression that selects everything.
pub const SUB_ALL: &str = "*";

/// A parsed tag sub-expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// The expression as given.
    pub expression: String,
    /// The tags (trimmed, non-empty); empty when `all`.
    pub tags: Vec<String>,
    /// `tag_hash_code` of each tag, in the same order.
    pub codes: Vec<i64>,
    /// True for `*` and the empty expression.
    pub all: bool,
}

impl TagFilter {
    /// Parses `expression` (never fails: any text is a set of tags).
    pub fn parse(expression: &str) -> TagFilter {
        let trimmed = expression.trim();
        if trimmed.is_empty() || trimmed == SUB_ALL {
            return TagFilter::everything(expression);
        }
        let tags: Vec<String> = trimmed
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if tags.is_empty() {
            return TagFilter::everything(expression);
        }
        let codes = tags.iter().map(|t| tag_hash_code(t)).collect();
        TagFilter {
            expression: expression.to_string(),
            tags,
            codes,
            all: false,
        }
    }

    fn everything(expression: &str) -> TagFilter {
        TagFilter {
            expression: expression.to_string(),
            tags: Vec::new(),
            codes: Vec::new(),
            all: true,
        }
    }

    /// First step: may the entry with this ConsumeQueue tag hash match?
    pub fn matches_hash(&self, code: i64) -> bool {
        self.all || self.codes.contains(&code)
    }

    /// Second step: does a message with this tag (None: untagged) match?
    pub fn matches_tag(&self, tag: Option<&str>) -> bool {
        self.all || tag.is_some_and(|t| self.tags.iter().any(|x| x == t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_empty_select_everything() {
        for e in ["*", "", "  *  ", " || "] {
            let f = TagFilter::parse(e);
            assert!(f.all, "{e:?}");
            assert!(f.matches_hash(12345));
            assert!(f.matches_tag(None));
        }
    }

    #[test]
    fn or_list_is_split_and_trimmed() {
        let f = TagFilter::parse("TagA ||TagB||  ");
        assert_eq!(f.tags, vec!["TagA", "TagB"]);
        // Java "TagA".hashCode() = 2598919
        assert_eq!(f.codes[0], 2598919);
        assert!(f.matches_hash(tag_hash_code("TagB")));
        assert!(!f.matches_hash(tag_hash_code("TagC")));
        assert!(f.matches_tag(Some("TagA")));
        assert!(!f.matches_tag(Some("TagAB")));
        assert!(!f.matches_tag(None));
    }
}
