//! SHA-256 over a stream whose state can be saved at part boundaries and restored in a later
//! attempt, so a copy resumed from the middle still yields the hash of the whole object.
//! Built on `sha2`'s block function; the padding is FIPS 180-4's.

use sha2::digest::generic_array::GenericArray;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A running SHA-256.
#[derive(Clone, Debug)]
pub struct ResumableSha256 {
    state: [u32; 8],
    buffer: [u8; 64],
    buffered: usize,
    length: u64,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self {
            state: H0,
            buffer: [0; 64],
            buffered: 0,
            length: 0,
        }
    }
}

impl ResumableSha256 {
    /// Continues from a saved state after `length` bytes (a multiple of 64).
    pub fn resume(state: [u32; 8], length: u64) -> Option<Self> {
        length.is_multiple_of(64).then_some(Self {
            state,
            buffer: [0; 64],
            buffered: 0,
            length,
        })
    }

    /// The state to save, when the bytes so far are a whole number of blocks.
    pub fn checkpoint(&self) -> Option<([u32; 8], u64)> {
        (self.buffered == 0).then_some((self.state, self.length))
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Hashes more bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.length += data.len() as u64;
        if self.buffered > 0 {
            let take = (64 - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < 64 {
                return;
            }
            let block = self.buffer;
            sha2::compress256(&mut self.state, &[GenericArray::clone_from_slice(&block)]);
            self.buffered = 0;
        }
        let whole = data.len() / 64 * 64;
        // One block at a time, straight from the caller's bytes: no copy, no allocation.
        for block in data[..whole].chunks_exact(64) {
            sha2::compress256(
                &mut self.state,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let rest = &data[whole..];
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The digest, lowercase hex.
    pub fn finish_hex(mut self) -> String {
        let bits = self.length.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        tail[self.buffered] = 0x80;
        let total = if self.buffered < 56 { 64 } else { 128 };
        tail[total - 8..total].copy_from_slice(&bits.to_be_bytes());
        let blocks: Vec<_> = tail[..total]
            .chunks_exact(64)
            .map(GenericArray::clone_from_slice)
            .collect();
        sha2::compress256(&mut self.state, &blocks);
        self.state.iter().map(|w| format!("{w:08x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn matches_sha2_for_every_length_and_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 128, 999] {
            for split in [0, 1, 7, 64, len / 2] {
                let split = split.min(len);
                let mut h = ResumableSha256::default();
                h.update(&data[..split]);
                h.update(&data[split..len]);
                assert_eq!(
                    h.finish_hex(),
                    hex::encode(Sha256::digest(&data[..len])),
                    "len {len} split {split}"
                );
            }
        }
    }

    #[test]
    fn a_saved_state_resumes_to_the_same_digest() {
        let data = vec![7u8; 64 * 40 + 13];
        let mut first = ResumableSha256::default();
        first.update(&data[..64 * 20]);
        let (state, length) = first.checkpoint().unwrap();
        let mut resumed = ResumableSha256::resume(state, length).unwrap();
        resumed.update(&data[64 * 20..]);
        assert_eq!(resumed.finish_hex(), hex::encode(Sha256::digest(&data)));
        let mut partial = ResumableSha256::default();
        partial.update(b"abc");
        assert!(partial.checkpoint().is_none());
    }
}
