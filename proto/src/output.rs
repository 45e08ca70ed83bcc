//! A task's output: an exact unsigned integer (the compact fast path every
//! built-in numeric workload takes) or bytes (text, JSON, anything else), and
//! how outputs are shown (decimal text, JSON values).

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};

/// What one task produced.
#[derive(Clone, PartialEq, Eq)]
pub enum Output {
    /// An exact unsigned integer: travels in the link's varint columns and is
    /// stored in two 64-bit words.
    Int(u128),
    /// Anything else, bounded by the job's `max_result_bytes`.
    Bytes(Vec<u8>),
}

impl Output {
    /// The integer, for an integer output.
    pub fn as_int(&self) -> Option<u128> {
        match self {
            Output::Int(v) => Some(*v),
            Output::Bytes(_) => None,
        }
    }

    /// How many bytes the output takes (an integer: 16).
    pub fn len(&self) -> usize {
        match self {
            Output::Int(_) => 16,
            Output::Bytes(b) => b.len(),
        }
    }

    /// Never true: even an empty byte output is an output.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The output as text: an integer in decimal, bytes as UTF-8 (invalid
    /// sequences replaced).
    pub fn to_text(&self) -> String {
        match self {
            Output::Int(v) => v.to_string(),
            Output::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        }
    }

    /// The output as one JSON value: an integer as a JSON string (u128 does
    /// not fit a JSON number everywhere) unless it fits 2^53, bytes that are
    /// one JSON value as that value, other bytes as a JSON string.
    pub fn to_json(&self) -> serde_json::Value {
        match self.json_form() {
            JsonForm::Number(n) => serde_json::Value::from(n),
            JsonForm::Decimal(v) => serde_json::Value::String(v.to_string()),
            JsonForm::Value(v) => v,
            JsonForm::Text(t) => serde_json::Value::String(t.into_owned()),
        }
    }

    /// [`Output::to_text`] as a JSON string, for a serializer: writes the
    /// same bytes as serializing `to_text()` without building the string
    /// (an integer, or bytes that are valid UTF-8, allocate nothing).
    pub fn text_serialized(&self) -> TextSerialized<'_> {
        TextSerialized(self)
    }

    /// [`Output::to_json`] for a serializer: writes the same bytes as
    /// serializing `to_json()`, building a `serde_json::Value` only for
    /// bytes that are one JSON value (so that they read back as that
    /// value, as before).
    pub fn json_serialized(&self) -> JsonSerialized<'_> {
        JsonSerialized(self)
    }

    /// Which JSON value the output reads as: the one definition behind
    /// [`Output::to_json`] and [`Output::json_serialized`].
    fn json_form(&self) -> JsonForm<'_> {
        match self {
            Output::Int(v) if *v < (1 << 53) => JsonForm::Number(*v as u64),
            Output::Int(v) => JsonForm::Decimal(*v),
            Output::Bytes(b) => match may_be_json(b)
                .then(|| serde_json::from_slice::<serde_json::Value>(b).ok())
                .flatten()
            {
                Some(v) => JsonForm::Value(v),
                None => JsonForm::Text(String::from_utf8_lossy(b)),
            },
        }
    }
}

/// An output as a JSON value, before it is built or written.
enum JsonForm<'a> {
    /// An integer below 2^53: a JSON number.
    Number(u64),
    /// A larger integer: its decimal digits as a JSON string.
    Decimal(u128),
    /// Bytes that are one JSON value.
    Value(serde_json::Value),
    /// Other bytes, as text.
    Text(Cow<'a, str>),
}

/// Whether `bytes` can be one JSON value at all: serde_json skips the same
/// whitespace and then fails on any other first byte, so text that starts
/// with a letter (most text outputs) is never handed to the parser.
fn may_be_json(bytes: &[u8]) -> bool {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'));
    matches!(
        first,
        Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
    )
}

/// See [`Output::text_serialized`].
pub struct TextSerialized<'a>(&'a Output);

impl Serialize for TextSerialized<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Output::Int(v) => s.serialize_str(itoa::Buffer::new().format(*v)),
            Output::Bytes(b) => s.serialize_str(&String::from_utf8_lossy(b)),
        }
    }
}

/// See [`Output::json_serialized`].
pub struct JsonSerialized<'a>(&'a Output);

impl Serialize for JsonSerialized<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.json_form() {
            JsonForm::Number(n) => s.serialize_u64(n),
            JsonForm::Decimal(v) => s.serialize_str(itoa::Buffer::new().format(v)),
            JsonForm::Value(v) => v.serialize(s),
            JsonForm::Text(t) => s.serialize_str(&t),
        }
    }
}

impl From<u128> for Output {
    fn from(v: u128) -> Output {
        Output::Int(v)
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Int(v) => write!(f, "Int({v})"),
            Output::Bytes(b) => write!(f, "Bytes({:?})", String::from_utf8_lossy(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_render_as_text_and_json() {
        assert_eq!(Output::Int(42).to_text(), "42");
        assert_eq!(Output::Int(42).to_json(), serde_json::json!(42));
        assert_eq!(
            Output::Int(u128::MAX).to_json(),
            serde_json::json!(u128::MAX.to_string())
        );
        assert_eq!(
            Output::Bytes(br#"{"a":1}"#.to_vec()).to_json(),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            Output::Bytes(b"plain text".to_vec()).to_json(),
            serde_json::json!("plain text")
        );
        assert_eq!(Output::Bytes(vec![0xff, b'a']).to_text(), "\u{fffd}a");
    }

    /// Outputs of every kind: integers around 2^53 and u128::MAX, bytes that
    /// are JSON (keys out of order, spaces, every kind of first byte), bytes
    /// that only start like JSON, text, invalid UTF-8, control characters.
    fn outputs() -> Vec<Output> {
        let mut all: Vec<Output> = [0, 1, (1 << 53) - 1, 1 << 53, (1 << 53) + 1, u128::MAX]
            .map(Output::Int)
            .into();
        let bytes: [&[u8]; 22] = [
            b"",
            b" ",
            br#"{"b":1,"a":[1,2.50,"x"]}"#,
            b" \t\r\n[1, 2 ,3] ",
            br#""quoted \u00e9""#,
            b"-1",
            b"-",
            b"12",
            b"12x",
            b"1e400",
            b"true",
            b"tru",
            b"false",
            b"null",
            b"nothing",
            b"{not json",
            b"plain text",
            b"restaurant 7 xxxxxx",
            b"a,b\n\"c\"",
            b"tab\there \x01 \x7f",
            "h\u{e9}llo \u{2713}".as_bytes(),
            &[0xff, b'a', 0xc3],
        ];
        all.extend(bytes.map(|b| Output::Bytes(b.to_vec())));
        all
    }

    #[test]
    fn serialized_forms_write_exactly_what_the_values_write() {
        for o in outputs() {
            assert_eq!(
                serde_json::to_string(&o.json_serialized()).unwrap(),
                serde_json::to_string(&o.to_json()).unwrap(),
                "{o:?}"
            );
            assert_eq!(
                serde_json::to_string(&o.text_serialized()).unwrap(),
                serde_json::to_string(&o.to_text()).unwrap(),
                "{o:?}"
            );
        }
    }

    #[test]
    fn only_bytes_that_cannot_be_json_skip_the_parser() {
        for o in outputs() {
            if let Output::Bytes(b) = &o {
                let parses = serde_json::from_slice::<serde_json::Value>(b).is_ok();
                assert!(!parses || may_be_json(b), "{o:?} is JSON");
            }
        }
    }
}
