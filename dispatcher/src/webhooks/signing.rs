//! HMAC-SHA256 (RFC 2104) over `sha2`, already in the tree: the signature
//! a partner checks on every delivery.

use sha2::{Digest, Sha256};

const BLOCK: usize = 64;

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|byte| byte ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|byte| byte ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The `x-pingji-signature` value: `v1=` and the hex HMAC of
/// `TIMESTAMP.BODY` under the subscriber's secret.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.as_bytes(), &[timestamp.as_bytes(), b".", body]);
    let hex: String = mac.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn rfc_4231_test_vectors() {
        // Test case 2: a short key.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let key = [0xaau8; 131];
        assert_eq!(
            hex(&hmac_sha256(&key, &[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        let signed = signature("s3cret-s3cret-s3cret", "1765080000", b"{}");
        assert!(signed.starts_with("v1=") && signed.len() == 67, "{signed}");
        assert_ne!(signed, signature("s3cret-s3cret-s3cret", "1765080001", b"{}"));
        assert_ne!(signed, signature("s3cret-s3cret-s3cret", "1765080000", b"{ }"));
    }
}
