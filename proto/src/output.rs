//! A task's output: an exact unsigned integer (the compact fast path every
//! built-in numeric workload takes) or bytes (text, JSON, anything else), and
//! how outputs are shown (decimal text, JSON values).

use std::fmt;

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
        match self {
            Output::Int(v) if *v < (1 << 53) => serde_json::Value::from(*v as u64),
            Output::Int(v) => serde_json::Value::String(v.to_string()),
            Output::Bytes(b) => match serde_json::from_slice::<serde_json::Value>(b) {
                Ok(v) => v,
                Err(_) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
            },
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
}
