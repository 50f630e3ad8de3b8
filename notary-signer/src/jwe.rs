//! JWE compact serialisation with PBES2-HS256+A128KW key wrapping and A256GCM content
//! encryption: the at-rest format of the Go notary-signer's `private_keys.private` column
//! (docs/key-storage.md). Written with the RustCrypto primitives; no JOSE crate supports PBES2
//! without OpenSSL.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

const ALG: &str = "PBES2-HS256+A128KW";
const ENC: &str = "A256GCM";
/// Iteration count the Go signer writes.
pub const P2C: u32 = 8192;
/// Refuse absurd iteration counts from a tampered header (CPU exhaustion).
const MAX_P2C: u32 = 1_000_000;

/// Why a stored key could not be decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JweError {
    /// Not a five-part compact JWE.
    #[error("malformed JWE token")]
    Malformed,
    /// Another algorithm than Go's (PBES2-HS256+A128KW, A256GCM).
    #[error("unsupported JWE algorithm")]
    Unsupported,
    /// Wrong passphrase, or the data was changed.
    #[error("JWE decryption failed (wrong passphrase or corrupted data)")]
    Decrypt,
}

fn kek(passphrase: &[u8], p2s: &[u8], p2c: u32) -> Zeroizing<[u8; 16]> {
    let mut salt = Vec::with_capacity(ALG.len() + 1 + p2s.len());
    salt.extend_from_slice(ALG.as_bytes());
    salt.push(0);
    salt.extend_from_slice(p2s);
    let mut out = Zeroizing::new([0u8; 16]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase, &salt, p2c, out.as_mut());
    out
}

/// A private key encrypted under a passphrase, as Go's signer stores it (compact JWE).
pub fn encrypt(plaintext: &[u8], passphrase: &[u8]) -> String {
    let mut p2s = [0u8; 12];
    OsRng.fill_bytes(&mut p2s);
    let header = format!(
        r#"{{"alg":"{ALG}","enc":"{ENC}","p2c":{P2C},"p2s":"{}"}}"#,
        B64URL.encode(p2s)
    );
    let header_b64 = B64URL.encode(header.as_bytes());
    let kek = kek(passphrase, &p2s, P2C);
    let mut cek = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(cek.as_mut());
    let wrapped = aes_kw::KekAes128::from(*kek)
        .wrap_vec(cek.as_ref())
        .expect("32-byte CEK wraps");
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let cipher = Aes256Gcm::new_from_slice(cek.as_ref()).expect("32-byte key");
    let mut ct = cipher
        .encrypt(
            &Nonce::from(iv),
            Payload {
                msg: plaintext,
                aad: header_b64.as_bytes(),
            },
        )
        .expect("AES-GCM encryption");
    let tag = ct.split_off(ct.len() - 16);
    format!(
        "{}.{}.{}.{}.{}",
        header_b64,
        B64URL.encode(wrapped),
        B64URL.encode(iv),
        B64URL.encode(ct),
        B64URL.encode(tag)
    )
}

/// The private key a stored JWE holds (Go's or ours), with the passphrase it was made under.
pub fn decrypt(token: &str, passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, JweError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 5 {
        return Err(JweError::Malformed);
    }
    let dec = |s: &str| {
        B64URL
            .decode(s.trim_end_matches('='))
            .map_err(|_| JweError::Malformed)
    };
    let header: serde_json::Value =
        serde_json::from_slice(&dec(parts[0])?).map_err(|_| JweError::Malformed)?;
    if header["alg"] != ALG || header["enc"] != ENC {
        return Err(JweError::Unsupported);
    }
    let p2c = header["p2c"]
        .as_u64()
        .filter(|c| *c >= 1 && *c <= MAX_P2C as u64)
        .ok_or(JweError::Malformed)? as u32;
    let p2s = dec(header["p2s"].as_str().ok_or(JweError::Malformed)?)?;
    let kek = kek(passphrase, &p2s, p2c);
    let cek = Zeroizing::new(
        aes_kw::KekAes128::from(*kek)
            .unwrap_vec(&dec(parts[1])?)
            .map_err(|_| JweError::Decrypt)?,
    );
    let iv: [u8; 12] = dec(parts[2])?.try_into().map_err(|_| JweError::Malformed)?;
    if cek.len() != 32 {
        return Err(JweError::Malformed);
    }
    let mut ct = dec(parts[3])?;
    ct.extend_from_slice(&dec(parts[4])?);
    let cipher = Aes256Gcm::new_from_slice(&cek).map_err(|_| JweError::Malformed)?;
    let pt = cipher
        .decrypt(
            &Nonce::from(iv),
            Payload {
                msg: &ct,
                aad: parts[0].as_bytes(),
            },
        )
        .map_err(|_| JweError::Decrypt)?;
    Ok(Zeroizing::new(pt))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/key-storage.md: a token written by Go's jose2go, passphrase `testpassword`.
    const GO_TOKEN: &str = "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJlbmMiOiJBMjU2R0NNIiwicDJjIjo4MTkyLCJwMnMiOiJwYWhRbUZZYUgwNG5GYXphIn0.XvW-3geFlBIk8Mw6-ql2z7c4qg--AyOaUE6xABRwHUKPUxvZY7zM9Q.6cLGOAv_KogQKHwn.U6UbKGdBlRddBfXFCh8kMADVoePEKzad7_BpeyIIK5xHrDL-68mk2R5TQ-0N8WVNLJitwbYm5IO_TsHeFn7VN41FJz8okdR2wbHH0gUh2jlEIf3cIacUrHyqC2Noe-rG.SrbWpcEGyXkM9rfvm4AFpA";

    #[test]
    fn decrypts_go_token() {
        let pt = decrypt(GO_TOKEN, b"testpassword").unwrap();
        assert_eq!(pt.len(), 96);
        assert_eq!(
            hex::encode(&pt[..32]),
            "0b36da6ca5c851d1e3b1003690bf0f9917bb07ba32be64dd8adcc75c1ae8b0ec"
        );
        assert_eq!(
            hex::encode(&pt[32..64]),
            "b65f1c8bb1ee77ec588ed73d7c295fcb4b130df5fcc24ca7d1b2540db56591e7"
        );
        assert_eq!(decrypt(GO_TOKEN, b"wrong"), Err(JweError::Decrypt));
    }

    #[test]
    fn roundtrip_and_tamper() {
        let t = encrypt(b"secret key bytes", b"pw");
        assert_eq!(&decrypt(&t, b"pw").unwrap()[..], b"secret key bytes");
        let mut bad = t.clone().into_bytes();
        let n = bad.len() - 3;
        bad[n] = if bad[n] == b'A' { b'B' } else { b'A' };
        assert!(decrypt(std::str::from_utf8(&bad).unwrap(), b"pw").is_err());
        assert_eq!(decrypt("a.b.c", b"pw"), Err(JweError::Malformed));
    }
}
