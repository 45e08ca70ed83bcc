//! A job's inputs from a file (or stdin), as `brigade submit --inputs FILE`
//! and `brigade bench --job` read them: line by line into a job's items,
//! checked as it streams (UTF-8 text, or one JSON value per line with
//! `--inputs-format jsonl`) and handed to the upload in bounded batches, so a
//! file of any size costs bounded memory. A bad line stops the upload before
//! its end marker: the coordinator accepts nothing, and the error names the
//! file and the line.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use crate::{ClientError, InputsFormat};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The longest line an input may have (the coordinator's own bound is the
/// same order: one item travels in one message).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The reading thread hands items over in batches of at most this many
/// items or bytes (a longer line travels alone): one channel message per
/// batch, not per line, which was most of the reader's CPU time.
const BATCH_ITEMS: usize = 1_024;
/// See [`BATCH_ITEMS`].
const BATCH_BYTES: usize = 1 << 18;
/// Batches read ahead of the upload (with [`BATCH_BYTES`], the bound on
/// what waits in memory: a few MiB whatever the file's size).
const READ_AHEAD: usize = 8;

/// Where the items come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input (`-`).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// `-` is standard input.
    pub fn parse(s: &str) -> Source {
        if s == "-" {
            Source::Stdin
        } else {
            Source::File(PathBuf::from(s))
        }
    }

    fn name(&self) -> String {
        match self {
            Source::Stdin => "standard input".into(),
            Source::File(p) => p.display().to_string(),
        }
    }

    fn open(&self) -> Result<Box<dyn Read + Send>, String> {
        match self {
            Source::Stdin => Ok(Box::new(std::io::stdin())),
            Source::File(p) => std::fs::File::open(p)
                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                .map_err(|e| format!("cannot read the inputs file {}: {e}", p.display())),
        }
    }
}

/// Checks one line and returns the item it makes (`None`: a blank line,
/// skipped).
pub fn item_of(line: &[u8], format: InputsFormat) -> Result<Option<Vec<u8>>, String> {
    let line = without_line_end(line);
    let text = std::str::from_utf8(line).map_err(|e| format!("is not UTF-8 text ({e})"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    if format == InputsFormat::Jsonl {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
            // serde counts lines within the line ("line 1"): only its
            // column means anything here.
            let full = e.to_string();
            let why = full
                .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
                .unwrap_or(&full);
            format!("is not one JSON value: {why} at column {}", e.column())
        })?;
    }
    Ok(Some(line.to_vec()))
}

/// A line without its `\n` or `\r\n`.
fn without_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reads `source` on a thread of its own, line by line, and streams its
/// items; the first bad line (or read error) ends the stream with an error
/// naming the source and the line.
pub fn read(
    source: Source,
    format: InputsFormat,
) -> impl Stream<Item = Result<Vec<u8>, ClientError>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Result<Vec<Vec<u8>>, ClientError>>(READ_AHEAD);
    std::thread::spawn(move || {
        let name = source.name();
        let fail = |why: String| ClientError::Input(why);
        let reader = match source.open() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(fail(e)));
                return;
            }
        };
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut line = Vec::new();
        let mut batch = Vec::with_capacity(BATCH_ITEMS);
        let mut bytes = 0;
        for number in 1.. {
            line.clear();
            // The longest line, its `\r\n`, and one byte more to tell a
            // longer one.
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 3)
                .read_until(b'\n', &mut line);
            let item = match read {
                Ok(0) => break,
                Ok(_) if without_line_end(&line).len() > MAX_LINE_BYTES => Err(format!(
                    "{name}, line {number}: longer than {MAX_LINE_BYTES} bytes, the most one input may have"
                )),
                Ok(_) => item_of(&line, format).map_err(|why| format!("{name}, line {number} {why}")),
                Err(e) => Err(format!("cannot read {name} at line {number}: {e}")),
            };
            match item {
                Ok(None) => continue,
                Ok(Some(item)) => {
                    bytes += item.len();
                    batch.push(item);
                }
                Err(why) => {
                    // The good lines before it, then why the stream ends.
                    if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
                        return;
                    }
                    let _ = tx.blocking_send(Err(fail(why)));
                    return;
                }
            }
            if batch.len() >= BATCH_ITEMS || bytes >= BATCH_BYTES {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
                bytes = 0;
                if tx.blocking_send(Ok(full)).is_err() {
                    // The upload stopped; nobody reads the rest.
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(Ok(batch));
        }
    });
    ReceiverStream::new(rx).flat_map(|batch| {
        futures::stream::iter(match batch {
            Ok(items) => items.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_items_and_bad_ones_say_why() {
        let text = InputsFormat::Text;
        assert_eq!(
            item_of(b"Pizza Hut\n", text),
            Ok(Some(b"Pizza Hut".to_vec()))
        );
        assert_eq!(item_of(b"x\r\n", text), Ok(Some(b"x".to_vec())));
        assert_eq!(item_of(b"   \n", text), Ok(None));
        assert!(item_of(b"\xff\n", text).unwrap_err().contains("UTF-8"));
        let json = InputsFormat::Jsonl;
        assert_eq!(
            item_of(b"{\"a\": 1}\n", json),
            Ok(Some(b"{\"a\": 1}".to_vec()))
        );
        assert!(item_of(b"{\"a\": \n", json).unwrap_err().contains("JSON"));
        assert_eq!(
            item_of(b"{\"a\": oops}\n", json).unwrap_err(),
            "is not one JSON value: expected value at column 7"
        );
        assert!(item_of(b"1 2\n", json).unwrap_err().contains("JSON"));
    }

    #[tokio::test]
    async fn a_file_streams_its_items_and_stops_at_the_first_bad_line() {
        let dir = std::env::temp_dir().join(format!("brigade-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "a\n\nb\nc").unwrap();
        let items: Vec<_> = read(Source::File(good), InputsFormat::Text)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(items, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "1\n\"two\"\n{oops\n4\n").unwrap();
        let got: Vec<_> = read(Source::File(bad.clone()), InputsFormat::Jsonl)
            .collect()
            .await;
        assert_eq!(got.len(), 3);
        let e = got[2].as_ref().unwrap_err().to_string();
        assert!(
            e.contains(&bad.display().to_string()) && e.contains("line 3"),
            "{e}"
        );
        // Across batches: every good line before the bad one, in order.
        let long = dir.join("long.txt");
        let mut bytes = Vec::new();
        for i in 0..2_500 {
            if i == 2_100 {
                bytes.extend_from_slice(b"\xff\n");
            }
            bytes.extend_from_slice(format!("{i}\n").as_bytes());
        }
        std::fs::write(&long, bytes).unwrap();
        let got: Vec<_> = read(Source::File(long.clone()), InputsFormat::Text)
            .collect()
            .await;
        assert_eq!(got.len(), 2_101);
        for (i, item) in got[..2_100].iter().enumerate() {
            assert_eq!(item.as_ref().unwrap(), i.to_string().as_bytes());
        }
        let e = got[2_100].as_ref().unwrap_err().to_string();
        assert!(e.contains("line 2101") && e.contains("UTF-8"), "{e}");
        // A reader whose items are no longer wanted stops.
        let first: Vec<_> = read(Source::File(long), InputsFormat::Text)
            .take(3)
            .collect()
            .await;
        assert_eq!(first.len(), 3);
        let missing = dir.join("missing.txt");
        let got: Vec<_> = read(Source::File(missing), InputsFormat::Text)
            .collect()
            .await;
        let e = got[0].as_ref().unwrap_err().to_string();
        assert!(
            e.contains("missing.txt") && e.contains("cannot read"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
