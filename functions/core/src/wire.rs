//! Text that crosses a queue: SQS refuses a message holding a character outside
//! `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`. JSON escapes the
//! control characters below U+0020 already; the two noncharacters U+FFFE and U+FFFF it writes
//! as they are, so they are escaped here. They can only stand inside JSON strings (the rest
//! of JSON is ASCII), where `\uffff` means the same character: the body parses to the same
//! value.

/// `json` with U+FFFE and U+FFFF escaped, so that SQS accepts it as a message body.
pub fn queue_safe_json(json: String) -> String {
    if !json.contains(['\u{FFFE}', '\u{FFFF}']) {
        return json;
    }
    json.replace('\u{FFFE}', "\\ufffe").replace('\u{FFFF}', "\\uffff")
}

/// Whether SQS accepts `text` as a message body, character by character.
pub fn sqs_accepts(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
    })
}

/// Counts what a serializer writes, to measure a body without building it.
#[derive(Debug, Default)]
pub struct ByteCounter {
    pub bytes: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn every_character_json_can_hold_reaches_the_queue_and_back() {
        // GIVEN a value with every character SQS refuses that a Rust string can hold
        let refused: String = ('\u{0}'..='\u{8}')
            .chain(['\u{B}', '\u{C}'])
            .chain('\u{E}'..='\u{1F}')
            .chain(['\u{FFFE}', '\u{FFFF}'])
            .collect();
        assert!(refused.chars().all(|c| !sqs_accepts(&c.to_string())));
        let value = json!({"s": format!("a{refused}b"), "ok": "é ✓ 𝄞"});
        // WHEN it is serialised for the queue
        let body = queue_safe_json(value.to_string());
        // THEN SQS accepts the body, and it parses back to the same value
        assert!(sqs_accepts(&body), "{body:?}");
        assert_eq!(serde_json::from_str::<Value>(&body).ok(), Some(value));
    }

    #[test]
    fn the_counter_counts_what_is_written() {
        let value = json!({"a": [1, "two"], "é": null});
        let mut counter = ByteCounter::default();
        let _ = serde_json::to_writer(&mut counter, &value);
        assert_eq!(counter.bytes, value.to_string().len());
    }
}
