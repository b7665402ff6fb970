//! The top-level box structure of an ISO base media file, followed as it streams past: each
//! box declares its size, so a body that ends inside a box is a truncated video even when the
//! host sent no Content-Length.

/// Follows top-level boxes: where the next one starts, and its header as it arrives.
#[derive(Debug, Default)]
pub struct BoxWalker {
    next_box: u64,
    header: Vec<u8>,
    open_ended: bool,
    last_type: [u8; 4],
}

impl BoxWalker {
    /// Takes the bytes at `offset..offset + chunk.len()`; chunks arrive in order.
    pub fn feed(&mut self, offset: u64, chunk: &[u8]) -> Result<(), String> {
        let end = offset + chunk.len() as u64;
        loop {
            if self.open_ended {
                return Ok(());
            }
            let want_at = self.next_box + self.header.len() as u64;
            if want_at >= end {
                return Ok(());
            }
            let size32 = (self.header.len() >= 4)
                .then(|| u32::from_be_bytes(self.header[..4].try_into().unwrap()));
            let need = if size32 == Some(1) { 16 } else { 8 };
            let i = (want_at - offset) as usize;
            let take = (need - self.header.len()).min(chunk.len() - i);
            self.header.extend_from_slice(&chunk[i..i + take]);
            if self.header.len() < 8 {
                return Ok(());
            }
            let size32 = u32::from_be_bytes(self.header[..4].try_into().unwrap());
            if size32 == 1 && self.header.len() < 16 {
                continue;
            }
            self.last_type = self.header[4..8].try_into().unwrap();
            let size = match size32 {
                0 => {
                    self.open_ended = true;
                    return Ok(());
                }
                1 => u64::from_be_bytes(self.header[8..16].try_into().unwrap()),
                n => u64::from(n),
            };
            if size < self.header.len() as u64 {
                return Err(format!(
                    "box {:?} at byte {} declares an impossible size {size}",
                    String::from_utf8_lossy(&self.last_type),
                    self.next_box
                ));
            }
            self.next_box += size;
            self.header.clear();
        }
    }

    /// Checks that `total` bytes end exactly where the last box does.
    pub fn finish(&self, total: u64) -> Result<(), String> {
        if self.open_ended || (self.header.is_empty() && self.next_box == total) {
            return Ok(());
        }
        Err(format!(
            "the body ended at byte {total} inside box {:?}, which runs to byte {}",
            String::from_utf8_lossy(&self.last_type),
            self.next_box.max(total + 1)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/grok_video3_6s_480p.mp4"
        ))
        .unwrap()
    }

    fn walk(data: &[u8], chunk: usize) -> Result<(), String> {
        let mut w = BoxWalker::default();
        let mut offset = 0;
        for c in data.chunks(chunk.max(1)) {
            w.feed(offset, c)?;
            offset += c.len() as u64;
        }
        w.finish(data.len() as u64)
    }

    #[test]
    fn a_whole_mp4_passes_in_any_chunking() {
        let data = file();
        for chunk in [1, 3, 7, 8, 9, 4096, data.len()] {
            assert_eq!(walk(&data, chunk), Ok(()), "chunk {chunk}");
        }
    }

    #[test]
    fn a_cut_mp4_is_caught() {
        let data = file();
        for cut in [10, 100, data.len() / 2, data.len() - 1] {
            assert!(walk(&data[..cut], 4096).is_err(), "cut at {cut}");
        }
        let mut big = vec![0, 0, 0, 1];
        big.extend_from_slice(b"mdat");
        big.extend_from_slice(&40u64.to_be_bytes());
        big.extend_from_slice(&[0u8; 24]);
        assert_eq!(walk(&big, 5), Ok(()), "64-bit box sizes");
        assert!(walk(&big[..30], 5).is_err());
    }
}
