//! Length-delimited prost frames on the pipes between a worker and its
//! executor children: a varint length, then the message bytes (the same
//! framing as `prost::Message::encode_length_delimited`).

use std::io::{self, BufRead};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Larger frames mean a corrupt stream, not a real task or outcome.
pub(crate) const MAX_FRAME: usize = 16 * 1024 * 1024;

fn too_big(len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
    )
}

fn bad_varint() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "frame length is not a valid varint",
    )
}

/// Reads one frame into `buf`. `Ok(false)`: clean end of input before a frame.
pub(crate) fn read_frame_blocking(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = 0u64;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        if r.read(&mut byte)? == 0 {
            if i == 0 {
                return Ok(false);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if len > MAX_FRAME as u64 {
                return Err(too_big(len));
            }
            buf.resize(len as usize, 0);
            r.read_exact(buf)?;
            return Ok(true);
        }
    }
    Err(bad_varint())
}

/// Reads one frame into `buf`; end of input is `UnexpectedEof`.
pub(crate) async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    let mut len = 0u64;
    for i in 0..10 {
        let byte = r.read_u8().await?;
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if len > MAX_FRAME as u64 {
                return Err(too_big(len));
            }
            buf.resize(len as usize, 0);
            r.read_exact(buf).await?;
            return Ok(());
        }
    }
    Err(bad_varint())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brigade_proto::v1::TaskOutcome;
    use prost::Message;

    #[test]
    fn blocking_frames_round_trip_and_eof_is_clean() {
        let mut wire = Vec::new();
        for index in [1u64, 300, 1 << 40] {
            TaskOutcome {
                index,
                error: "x".repeat(index as usize % 200),
                ..Default::default()
            }
            .encode_length_delimited(&mut wire)
            .unwrap();
        }
        let mut r = io::BufReader::new(&wire[..]);
        let mut buf = Vec::new();
        for index in [1u64, 300, 1 << 40] {
            assert!(read_frame_blocking(&mut r, &mut buf).unwrap());
            assert_eq!(TaskOutcome::decode(&buf[..]).unwrap().index, index);
        }
        assert!(!read_frame_blocking(&mut r, &mut buf).unwrap());
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut buf = Vec::new();
        let mut r = io::BufReader::new(&[5u8, 1, 2][..]);
        assert!(read_frame_blocking(&mut r, &mut buf).is_err());
        let mut r = io::BufReader::new(&[0xff, 0xff, 0xff, 0xff, 0x7f][..]);
        let e = read_frame_blocking(&mut r, &mut buf).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }

    #[tokio::test]
    async fn async_frames_round_trip_and_eof_is_an_error() {
        let mut wire = Vec::new();
        TaskOutcome {
            index: 9,
            ..Default::default()
        }
        .encode_length_delimited(&mut wire)
        .unwrap();
        let mut r = &wire[..];
        let mut buf = Vec::new();
        read_frame(&mut r, &mut buf).await.unwrap();
        assert_eq!(TaskOutcome::decode(&buf[..]).unwrap().index, 9);
        let e = read_frame(&mut r, &mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
