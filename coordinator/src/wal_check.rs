//! Reads a state file's `-wal` before SQLite opens it. SQLite takes a log
//! whose header or frames do not check out for an empty or shorter log and
//! carries on with an older state, then writes over it; brigade refuses
//! such a file instead (see `Store::open`). What is checked is the WAL
//! format (sqlite.org/fileformat2.html#walformat): the header's magic,
//! version, page size and checksum, and each frame's salts and cumulative
//! checksum up to the first that fails.

use std::io::Read;
use std::path::Path;

const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;
const VERSION: u32 = 3_007_000;

/// What a log holds, as SQLite would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalSummary {
    /// Frames SQLite would replay (up to the last commit frame that checks out).
    pub valid_frames: u64,
    /// Transactions among them.
    pub commits: u64,
}

/// Why a log cannot be trusted.
pub(crate) type WalDamage = String;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing
/// from `s`.
fn checksum(big_endian: bool, mut s: (u32, u32), data: &[u8]) -> (u32, u32) {
    for pair in data.chunks_exact(8) {
        let word = |w: &[u8]| {
            let w = [w[0], w[1], w[2], w[3]];
            if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        };
        s.0 = s.0.wrapping_add(word(&pair[..4]).wrapping_add(s.1));
        s.1 = s.1.wrapping_add(word(&pair[4..]).wrapping_add(s.0));
    }
    s
}

/// Checks the log at `path`: `Ok(None)` when there is none (or it is
/// empty), its summary when it is sound, what is wrong otherwise.
pub(crate) fn check(path: &Path) -> std::io::Result<Result<Option<WalSummary>, WalDamage>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(check_bytes(&bytes))
}

pub(crate) fn check_bytes(b: &[u8]) -> Result<Option<WalSummary>, WalDamage> {
    if b.is_empty() {
        return Ok(None);
    }
    if b.len() < HEADER {
        return Err(format!(
            "{} bytes long, shorter than a WAL header ({HEADER} bytes)",
            b.len()
        ));
    }
    let magic = be32(b, 0);
    let big_endian = match magic {
        MAGIC_LE => false,
        MAGIC_BE => true,
        m => return Err(format!("not a WAL file (magic {m:#010x})")),
    };
    if be32(b, 4) != VERSION {
        return Err(format!("unknown WAL version {}", be32(b, 4)));
    }
    let page = be32(b, 8) as usize;
    if !(512..=65_536).contains(&page) || !page.is_power_of_two() {
        return Err(format!("impossible page size {page} in its header"));
    }
    let salts = (be32(b, 16), be32(b, 20));
    let mut s = checksum(big_endian, (0, 0), &b[..24]);
    if s != (be32(b, 24), be32(b, 28)) {
        return Err("its header fails its checksum".to_string());
    }
    let frame = FRAME_HEADER + page;
    let (mut at, mut n) = (HEADER, 0u64);
    let mut summary = WalSummary {
        valid_frames: 0,
        commits: 0,
    };
    // Frames of this log (its salts) that check out, in order.
    while at + frame <= b.len() {
        let f = &b[at..at + frame];
        if (be32(f, 8), be32(f, 12)) != salts {
            break;
        }
        s = checksum(big_endian, s, &f[..8]);
        s = checksum(big_endian, s, &f[FRAME_HEADER..]);
        if s != (be32(f, 16), be32(f, 20)) {
            break;
        }
        n += 1;
        if be32(f, 4) != 0 {
            summary.valid_frames = n;
            summary.commits += 1;
        }
        at += frame;
    }
    // Past the first frame that fails: a commit frame of this log means a
    // transaction that was made durable is no longer readable (a torn write
    // of an unacknowledged one never reaches its commit frame's fsync).
    let mut later = at + frame;
    while later + frame <= b.len() {
        let f = &b[later..later + frame];
        if (be32(f, 8), be32(f, 12)) == salts && be32(f, 4) != 0 {
            return Err(format!(
                "frame {} fails its checksum but committed frames of the same log follow it \
                 (at byte {later}): committed transactions would be lost",
                n + 1
            ));
        }
        later += frame;
    }
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log with `frames` frames of `page` bytes, the last a commit.
    fn wal(page: usize, frames: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(MAGIC_BE.to_be_bytes());
        b.extend(VERSION.to_be_bytes());
        b.extend((page as u32).to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(7u32.to_be_bytes());
        b.extend(9u32.to_be_bytes());
        let mut s = checksum(true, (0, 0), &b);
        b.extend(s.0.to_be_bytes());
        b.extend(s.1.to_be_bytes());
        for i in 0..frames {
            let mut h = Vec::new();
            h.extend((i + 1).to_be_bytes());
            h.extend((if i + 1 == frames { 5u32 } else { 0 }).to_be_bytes());
            h.extend(7u32.to_be_bytes());
            h.extend(9u32.to_be_bytes());
            let data = vec![i as u8; page];
            s = checksum(true, s, &h[..8]);
            s = checksum(true, s, &data);
            h.extend(s.0.to_be_bytes());
            h.extend(s.1.to_be_bytes());
            b.extend(h);
            b.extend(data);
        }
        b
    }

    #[test]
    fn a_sound_log_is_read_and_damage_is_named() {
        let good = wal(512, 3);
        assert_eq!(
            check_bytes(&good),
            Ok(Some(WalSummary {
                valid_frames: 3,
                commits: 1
            }))
        );
        assert_eq!(check_bytes(&[]), Ok(None));
        assert!(check_bytes(&good[..10]).unwrap_err().contains("shorter"));
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(check_bytes(&bad).unwrap_err().contains("not a WAL"));
        let mut bad = good.clone();
        bad[17] ^= 1;
        assert!(check_bytes(&bad).unwrap_err().contains("checksum"));
        // A flip in the first frame, before the commit frame: refused.
        let mut bad = good.clone();
        bad[HEADER + FRAME_HEADER + 3] ^= 1;
        assert!(check_bytes(&bad).unwrap_err().contains("committed"));
        // A torn tail (the commit frame itself cut or flipped) reads as
        // the log before it, as after a crash mid-write.
        let cut = &good[..good.len() - 100];
        assert_eq!(
            check_bytes(cut),
            Ok(Some(WalSummary {
                valid_frames: 0,
                commits: 0
            }))
        );
    }
}
