//! A software passkey authenticator and "browser" for the tests, speaking only the WebAuthn
//! JSON that travels over HTTP (the shape of `PublicKeyCredential.toJSON()`): ES256 keys,
//! "none" attestation, resident (discoverable) credentials, user presence and verification
//! set (unless told otherwise). Browsers' authenticators are not scriptable here, and
//! webauthn-authenticator-rs cannot make discoverable credentials.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08; // backup eligible (a synced passkey)
const BS: u8 = 0x10; // backed up
const AT: u8 = 0x40; // attested credential data included

#[derive(Clone)]
struct Credential {
    id: Vec<u8>,
    rp_id: String,
    user_handle: Vec<u8>,
    key: SigningKey,
    counter: u32,
}

#[derive(Clone, Default)]
pub struct SoftAuthenticator {
    creds: Vec<Credential>,
    /// Simulate a synced passkey (iCloud / Google Password Manager): BE+BS, counter stays 0.
    pub synced: bool,
    /// Set false to simulate an authenticator that skipped user verification.
    pub uv: bool,
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("system randomness");
    bytes
}

fn b64(s: &Value) -> Vec<u8> {
    B64.decode(s.as_str().expect("base64url string"))
        .expect("base64url")
}

// --- just enough CBOR -----------------------------------------------------------------
fn cbor_head(major: u8, len: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=0xff => out.extend([m | 24, len as u8]),
        _ => {
            out.push(m | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }
}
fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len(), out);
    out.extend_from_slice(b);
}
fn cbor_text(s: &str, out: &mut Vec<u8>) {
    cbor_head(3, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// COSE_Key for an EC2 P-256 ES256 public key: {1:2, 3:-7, -1:1, -2:x, -3:y}
fn cose_key(key: &SigningKey) -> Vec<u8> {
    let point = key.verifying_key().to_sec1_point(false); // 0x04 || x || y
    let p = point.as_bytes();
    let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
    cbor_bytes(&p[1..33], &mut out);
    out.push(0x22);
    cbor_bytes(&p[33..65], &mut out);
    out
}

fn client_data(kind: &str, challenge: &Value, origin: &str) -> Vec<u8> {
    // The challenge is echoed as the same base64url string the server sent.
    json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
        .to_string()
        .into_bytes()
}

impl std::fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("credentials", &self.creds.len())
            .field("synced", &self.synced)
            .field("uv", &self.uv)
            .finish()
    }
}

impl SoftAuthenticator {
    pub fn new() -> Self {
        SoftAuthenticator {
            creds: Vec::new(),
            synced: false,
            uv: true,
        }
    }

    /// The signature counter of the credential with `id` (base 64, URL-safe).
    pub fn counter(&self, id: &str) -> Option<u32> {
        let id = B64.decode(id).ok()?;
        self.creds.iter().find(|c| c.id == id).map(|c| c.counter)
    }

    /// `create` with the body of a registration start (`{"challenge_id", "publicKey"}`),
    /// as JSON values.
    pub fn create_json(&mut self, origin: &str, options: &Value) -> Value {
        let credential = self
            .create(origin, &options.to_string())
            .expect("the authenticator creates a credential");
        serde_json::from_str(&credential).expect("JSON")
    }

    /// `get` with the body of a login start, as JSON values.
    pub fn get_json(&mut self, origin: &str, options: &Value) -> Value {
        let assertion = self
            .get(origin, &options.to_string())
            .expect("the authenticator signs");
        serde_json::from_str(&assertion).expect("JSON")
    }

    fn flags(&self) -> u8 {
        UP | if self.uv { UV } else { 0 } | if self.synced { BE | BS } else { 0 }
    }

    /// navigator.credentials.create({publicKey}) : `options` is what the server sent
    /// (`{"publicKey": {...}}` or the publicKey object itself); returns the credential JSON.
    pub fn create(&mut self, origin: &str, options: &str) -> Result<String, String> {
        let v: Value = serde_json::from_str(options).map_err(|e| e.to_string())?;
        let pk = v.get("publicKey").unwrap_or(&v);
        let rp_id = pk["rp"]["id"].as_str().ok_or("no rp.id")?.to_owned();
        let user_handle = b64(&pk["user"]["id"]);
        if !pk["pubKeyCredParams"]
            .as_array()
            .ok_or("no params")?
            .iter()
            .any(|p| p["alg"] == -7)
        {
            return Err("ES256 not offered".into());
        }
        // excludeCredentials: refuse if we already hold one of them for this RP.
        if let Some(ex) = pk["excludeCredentials"].as_array() {
            for d in ex {
                let id = b64(&d["id"]);
                if self.creds.iter().any(|c| c.id == id && c.rp_id == rp_id) {
                    return Err("InvalidStateError: credential excluded".into());
                }
            }
        }
        // A resident credential replaces any other of the same RP + user handle.
        self.creds
            .retain(|c| !(c.rp_id == rp_id && c.user_handle == user_handle));

        let key = SigningKey::from_slice(&sha256(&random_bytes(32))).map_err(|e| e.to_string())?;
        let id = random_bytes(32);
        let cdj = client_data("webauthn.create", &pk["challenge"], origin);

        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(self.flags() | AT);
        auth_data.extend(0u32.to_be_bytes()); // sign count
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend((id.len() as u16).to_be_bytes());
        auth_data.extend(&id);
        auth_data.extend(cose_key(&key));

        // attestationObject = {"fmt": "none", "attStmt": {}, "authData": bytes}
        let mut att = vec![0xa3];
        cbor_text("fmt", &mut att);
        cbor_text("none", &mut att);
        cbor_text("attStmt", &mut att);
        att.push(0xa0);
        cbor_text("authData", &mut att);
        cbor_bytes(&auth_data, &mut att);

        let idb = B64.encode(&id);
        self.creds.push(Credential {
            id,
            rp_id,
            user_handle,
            key,
            counter: 0,
        });
        Ok(json!({
            "id": idb,
            "rawId": idb,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": B64.encode(&cdj),
                "attestationObject": B64.encode(&att),
                "transports": ["internal"]
            },
            "clientExtensionResults": {"credProps": {"rk": true}}
        })
        .to_string())
    }

    /// navigator.credentials.get({publicKey}) with an empty allowCredentials: picks the
    /// (first) resident credential for the RP, as the account chooser would.
    pub fn get(&mut self, origin: &str, options: &str) -> Result<String, String> {
        let v: Value = serde_json::from_str(options).map_err(|e| e.to_string())?;
        let pk = v.get("publicKey").unwrap_or(&v);
        let rp_id = pk["rpId"].as_str().ok_or("no rpId")?;
        let allow: Vec<Vec<u8>> = pk["allowCredentials"]
            .as_array()
            .map(|a| a.iter().map(|d| b64(&d["id"])).collect())
            .unwrap_or_default();
        let flags = self.flags();
        let synced = self.synced;
        let cred = self
            .creds
            .iter_mut()
            .find(|c| c.rp_id == rp_id && (allow.is_empty() || allow.contains(&c.id)))
            .ok_or("NotAllowedError: no credential")?;
        if !synced {
            cred.counter += 1;
        }
        let cdj = client_data("webauthn.get", &pk["challenge"], origin);
        let mut auth_data = sha256(rp_id.as_bytes());
        auth_data.push(flags);
        auth_data.extend(cred.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(sha256(&cdj));
        let sig: Signature = cred.key.sign(&signed); // ES256: ECDSA P-256 over SHA-256
        let idb = B64.encode(&cred.id);
        Ok(json!({
            "id": idb,
            "rawId": idb,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": B64.encode(&cdj),
                "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(sig.to_der().as_bytes()),
                "userHandle": B64.encode(&cred.user_handle)
            },
            "clientExtensionResults": {}
        })
        .to_string())
    }
}
