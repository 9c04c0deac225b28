//! What a command prints: aligned text tables for people, JSON for scripts.

use serde_json::{Map, Value};

/// A command's result in both renderings; `main` prints one of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Human-readable text, ending with a newline (or empty).
    pub text: String,
    /// The same facts as JSON.
    pub json: Value,
}

impl Report {
    /// A report whose text is `table` rendered and whose JSON is the table's rows as objects.
    pub fn from_table(table: &Table) -> Self {
        Report {
            text: table.render(),
            json: table.to_json(),
        }
    }
}

/// A table of strings with named columns.
///
/// [`Table::render`] left-aligns every column to its widest cell, two spaces apart, header first;
/// [`Table::to_json`] gives an array with one object per row keyed by the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank and extra cells are dropped.
    pub fn push<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.headers.len())
            .map(Into::into)
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Number of rows (the header excluded).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The table as aligned text, one line per row, trailing spaces trimmed.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header = self.headers.iter().map(|h| h.to_string());
        for line in std::iter::once(header.collect::<Vec<_>>()).chain(self.rows.iter().cloned()) {
            let mut text = String::new();
            for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// The rows as an array of objects keyed by column name (all values strings).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let obj: Map<String, Value> = self
                        .headers
                        .iter()
                        .zip(row)
                        .map(|(h, c)| (h.to_string(), Value::String(c.clone())))
                        .collect();
                    Value::Object(obj)
                })
                .collect(),
        )
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` in UTC; `-` for 0 or a negative
/// time (RocketMQ's "never").
pub fn format_millis(millis: i64) -> String {
    if millis <= 0 {
        return "-".to_string();
    }
    let t = tern_store::civil_time::UtcFields::from_epoch_millis(millis);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns() {
        let mut t = Table::new(&["Topic", "Queues"]);
        t.push(["a", "4"]);
        t.push(["longer-name", "16"]);
        t.push(["short"]);
        assert_eq!(
            t.render(),
            "Topic        Queues\na            4\nlonger-name  16\nshort\n"
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn json_rows_are_objects_keyed_by_header() {
        let mut t = Table::new(&["k", "v"]);
        t.push(["x", "1", "dropped"]);
        assert_eq!(t.to_json(), serde_json::json!([{"k": "x", "v": "1"}]));
    }

    #[test]
    fn millis_format_as_utc_dates() {
        assert_eq!(format_millis(0), "-");
        assert_eq!(format_millis(1), "1970-01-01 00:00:00.001");
        assert_eq!(format_millis(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14 22:13:20.123");
    }
}
