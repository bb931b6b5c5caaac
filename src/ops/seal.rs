//! Sealing what the gateway keeps outside its own memory (an answer in the
//! replicas' shared cache, a search job's debtor): ChaCha20-Poly1305 with a
//! fresh nonce per value, bound to where the value is kept (the associated
//! data), so a value moved elsewhere or sealed under another key does not open.

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};

/// Bytes of the nonce that starts a sealed value.
const NONCE: usize = 12;

/// Seals and opens under one key.
pub struct Sealer(ChaCha20Poly1305);

impl Sealer {
    /// A sealer with `key` (derive it from the audit key: replicas sharing that share this).
    pub fn new(key: [u8; 32]) -> Sealer {
        Sealer(ChaCha20Poly1305::new(&key.into()))
    }

    /// `plain` sealed for the place `bound_to`: the nonce, then the ciphertext and tag.
    pub fn seal(&self, bound_to: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let nonce: [u8; NONCE] = rand::random();
        let body = self.0.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: bound_to }).ok()?;
        Some([nonce.as_slice(), body.as_slice()].concat())
    }

    /// What [`Sealer::seal`] sealed for `bound_to`; `None` if it was altered, moved or sealed under another key.
    pub fn open(&self, bound_to: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_at_checked(NONCE)?;
        self.0.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: bound_to }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed_for_and_under_its_key() {
        let sealer = Sealer::new([7; 32]);
        let sealed = sealer.seal(b"here", b"110105199001011232").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"110105"), "nothing readable");
        assert_eq!(sealer.open(b"here", &sealed).as_deref(), Some(&b"110105199001011232"[..]));
        assert_eq!(sealer.open(b"there", &sealed), None);
        assert_eq!(Sealer::new([8; 32]).open(b"here", &sealed), None);
        assert_eq!(sealer.open(b"here", &sealed[..5]), None);
    }
}
