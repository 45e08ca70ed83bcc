//! An inputs job's items, held once per job in one arena (the bytes end to
//! end plus where each item ends), and their stored form: parts of at most
//! [`PART_BYTES`], each a run of length-prefixed items.

/// About how many bytes one stored part holds (an item is never split).
pub const PART_BYTES: usize = 1 << 20;

/// The items of one job, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inputs {
    data: Vec<u8>,
    ends: Vec<u64>,
}

impl Inputs {
    /// Appends one item.
    pub fn push(&mut self, item: &[u8]) {
        self.data.extend_from_slice(item);
        self.ends.push(self.data.len() as u64);
    }

    /// How many items.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// The bytes of every item together.
    pub fn bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// Item `i` (which must be below `len()`).
    pub fn item(&self, i: u64) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..self.ends[i] as usize]
    }

    /// Items `start..end` as owned byte strings (what an assignment carries).
    pub fn items(&self, start: u64, end: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
        (start..end.min(self.len())).map(|i| self.item(i).to_vec())
    }

    /// The stored form: parts of length-prefixed items.
    pub fn parts(&self) -> Vec<Vec<u8>> {
        let mut parts = Vec::new();
        let mut part = Vec::new();
        for i in 0..self.len() {
            let item = self.item(i);
            if !part.is_empty() && part.len() + item.len() > PART_BYTES {
                parts.push(std::mem::take(&mut part));
            }
            prost::encoding::encode_varint(item.len() as u64, &mut part);
            part.extend_from_slice(item);
        }
        if !part.is_empty() {
            parts.push(part);
        }
        parts
    }

    /// Reads the stored form back, or says where it is damaged.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Result<Inputs, String> {
        let mut inputs = Inputs::default();
        for (p, mut part) in parts.into_iter().enumerate() {
            while !part.is_empty() {
                let len = prost::encoding::decode_varint(&mut part)
                    .map_err(|e| format!("inputs part {p}: {e}"))?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= part.len())
                    .ok_or_else(|| format!("inputs part {p}: an item runs past its end"))?;
                inputs.push(&part[..len]);
                part = &part[len..];
            }
        }
        Ok(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_through_parts() {
        let mut inputs = Inputs::default();
        for i in 0..6000u32 {
            inputs.push(format!("line {i} {}", "x".repeat((i % 700) as usize)).as_bytes());
        }
        inputs.push(b"");
        assert_eq!(inputs.len(), 6001);
        assert_eq!(inputs.item(2), b"line 2 xx");
        assert_eq!(inputs.item(6000), b"");
        let parts = inputs.parts();
        assert!(parts.len() > 1, "{} parts", parts.len());
        assert!(parts.iter().all(|p| p.len() <= PART_BYTES + 1024));
        let back = Inputs::from_parts(parts.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(back, inputs);
        let items: Vec<_> = inputs.items(1, 3).collect();
        assert_eq!(items, [b"line 1 x".to_vec(), b"line 2 xx".to_vec()]);
        let mut bad = parts[0].clone();
        bad.truncate(bad.len() - 1);
        assert!(Inputs::from_parts([bad.as_slice()])
            .unwrap_err()
            .contains("runs past"));
    }
}
