//! The WebAuthn relying party (passkeys) on `webauthn-rs`: the domain's
//! [`PasskeyCeremonies`] port, and the rules that say from the settings whether passkeys
//! are on (`GATEHOUSE_PUBLIC_URL`, `GATEHOUSE_WEBAUTHN_RP_ID`).
//!
//! - Registration asks for a discoverable credential (resident key required) with user
//!   verification required; login names no credential (the authenticator offers its
//!   account chooser) and requires user verification too.
//! - The ceremonies' states are handed to the domain as JSON, to be stored between a start
//!   and its finish: they hold the challenge, which is not secret once sent.
//! - Nothing here logs a credential: a refusal is logged with the library's reason only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gatehouse_domain::{
    Error, PasskeyAssertion, PasskeyCeremonies, PasskeyLoginStart, PasskeyRegistrationStart,
    RegisteredPasskey,
};
use serde_json::Value;
use url::{Host, Url};
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

/// How long a browser is told a ceremony may take (the challenges live a little longer).
const CEREMONY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The relying party: its id (a domain), the origin the browser must report, and the
/// library configured for them.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    id: String,
    origin: String,
    webauthn: Webauthn,
}

impl RelyingParty {
    /// The relying party the settings make, if any: `rp_id` (`GATEHOUSE_WEBAUTHN_RP_ID`,
    /// by default the host of `public_url`) and the origin of `public_url`
    /// (`GATEHOUSE_PUBLIC_URL`).
    ///
    /// `Ok(None)` (passkeys off) when neither is set, or when the public URL's host is an
    /// IP address and no id is set (an IP address cannot be a relying party id).
    ///
    /// # Errors
    /// The problem, for the start-up's refusal: an id without a public URL, an id that is
    /// an IP address, not a domain name, or neither the public URL's host nor a parent
    /// domain of it.
    pub fn from_settings(
        public_url: Option<&str>,
        rp_id: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let rp_id = rp_id.map(str::trim).filter(|id| !id.is_empty());
        let Some(public_url) = public_url else {
            return match rp_id {
                None => Ok(None),
                Some(_) => Err("is set without GATEHOUSE_PUBLIC_URL: passkeys need the \
                                origin the browser is on; set GATEHOUSE_PUBLIC_URL too, or \
                                unset it"
                    .to_owned()),
            };
        };
        let url = Url::parse(public_url)
            .map_err(|e| format!("GATEHOUSE_PUBLIC_URL {public_url:?} is not a URL: {e}"))?;
        let host = match url.host() {
            Some(Host::Domain(host)) => host.to_ascii_lowercase(),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) if rp_id.is_none() => return Ok(None),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => {
                return Err(format!(
                    "needs GATEHOUSE_PUBLIC_URL to name a domain, not an IP address \
                     ({public_url}): browsers offer passkeys on domain names only"
                ))
            }
            None => return Err(format!("GATEHOUSE_PUBLIC_URL {public_url:?} has no host")),
        };
        let id = match rp_id {
            None => host.clone(),
            Some(id) => {
                let id = id.to_ascii_lowercase();
                check_rp_id(&id, &host)?;
                id
            }
        };
        let origin = url.origin().ascii_serialization();
        let origin_url = Url::parse(&origin).map_err(|e| format!("the origin {origin}: {e}"))?;
        let webauthn = WebauthnBuilder::new(&id, &origin_url)
            .and_then(|builder| {
                builder
                    .rp_name("Gatehouse")
                    .timeout(CEREMONY_TIMEOUT)
                    .build()
            })
            .map_err(|e| {
                format!("{id:?} is not a relying party id for the origin {origin}: {e}")
            })?;
        Ok(Some(Self {
            id,
            origin,
            webauthn,
        }))
    }

    /// The relying party id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The origin the browser must report.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// `id` must be a domain name (not an IP address, not a single label other than
/// `localhost`) equal to `host` or a parent domain of it.
fn check_rp_id(id: &str, host: &str) -> Result<(), String> {
    if id.parse::<std::net::IpAddr>().is_ok()
        || id
            .trim_matches(['[', ']'])
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    {
        return Err(format!(
            "{id:?} is an IP address: a relying party id must be a domain name such as \
             example.com"
        ));
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if id.len() > 253 || !id.split('.').all(valid_label) {
        return Err(format!(
            "{id:?} is not a domain name such as example.com (no scheme, port or path)"
        ));
    }
    if !id.contains('.') && id != "localhost" {
        return Err(format!(
            "{id:?} is a top-level domain: a relying party id must be a registrable domain \
             such as example.com"
        ));
    }
    if host != id && !host.ends_with(&format!(".{id}")) {
        return Err(format!(
            "{id:?} is neither the host of GATEHOUSE_PUBLIC_URL ({host}) nor a parent domain \
             of it: browsers refuse a relying party id the page's origin is not within"
        ));
    }
    Ok(())
}

fn refused(what: &'static str, reason: impl std::fmt::Display) -> Error {
    tracing::debug!(%reason, "passkey {what} refused");
    Error::InvalidCredential
}

fn json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::internal(what, e))
}

fn stored<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::internal(what, e))
}

impl PasskeyCeremonies for RelyingParty {
    fn start_registration(
        &self,
        handle: [u8; 16],
        email: &str,
        exclude: &[String],
    ) -> Result<PasskeyRegistrationStart, Error> {
        let exclude: Vec<CredentialID> = exclude
            .iter()
            .filter_map(|id| URL_SAFE_NO_PAD.decode(id).ok())
            .map(CredentialID::from)
            .collect();
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(Uuid::from_bytes(handle), email, email, Some(exclude))
            .map_err(|e| Error::internal("starting a passkey registration", e))?;
        // The library asks for no resident key; a login that names no account needs one.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok(PasskeyRegistrationStart {
            options: serde_json::to_value(&options)
                .map_err(|e| Error::internal("the creation options", e))?,
            state: json("a passkey registration's state", &state)?,
        })
    }

    fn finish_registration(
        &self,
        credential: &Value,
        state: &str,
    ) -> Result<RegisteredPasskey, Error> {
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| refused("registration", e))?;
        let state: PasskeyRegistration = stored("a passkey registration's state", state)?;
        // A browser that says it made no discoverable credential: it could not sign in.
        if let Some(props) = &credential.extensions.cred_props {
            if props.rk == Some(false) {
                return Err(refused("registration", "not a discoverable credential"));
            }
        }
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| refused("registration", e))?;
        Ok(RegisteredPasskey {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            data: json("a passkey", &passkey)?,
        })
    }

    fn start_login(&self) -> Result<PasskeyLoginStart, Error> {
        let (request, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| Error::internal("starting a passkey login", e))?;
        // Only the options: the library's `mediation` ("conditional") is the page's choice.
        Ok(PasskeyLoginStart {
            public_key: serde_json::to_value(&request.public_key)
                .map_err(|e| Error::internal("the request options", e))?,
            state: json("a passkey login's state", &state)?,
        })
    }

    fn identify(&self, credential: &Value) -> Result<PasskeyAssertion, Error> {
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| refused("login", e))?;
        let user_handle = credential
            .get_user_unique_id()
            .ok_or_else(|| refused("login", "no user handle"))?
            .to_vec();
        Ok(PasskeyAssertion {
            user_handle,
            credential_id: URL_SAFE_NO_PAD.encode(credential.get_credential_id()),
        })
    }

    fn finish_login(
        &self,
        credential: &Value,
        state: &str,
        data: &str,
    ) -> Result<Option<String>, Error> {
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| refused("login", e))?;
        let state: DiscoverableAuthentication = stored("a passkey login's state", state)?;
        let mut passkey: Passkey = stored("a stored passkey", data)?;
        let result = self
            .webauthn
            .finish_discoverable_authentication(
                &credential,
                state,
                &[DiscoverableKey::from(&passkey)],
            )
            .map_err(|e| refused("login", e))?;
        match passkey.update_credential(&result) {
            Some(true) => json("a passkey", &passkey).map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn party(url: Option<&str>, id: Option<&str>) -> Result<Option<RelyingParty>, String> {
        RelyingParty::from_settings(url, id)
    }

    #[test]
    fn the_settings_make_a_relying_party_or_none() {
        assert!(party(None, None).unwrap().is_none());
        assert!(party(Some("http://127.0.0.1:8080"), None)
            .unwrap()
            .is_none());
        assert!(party(Some("http://[::1]:8080"), None).unwrap().is_none());
        let local = party(Some("http://localhost:8080"), None).unwrap().unwrap();
        assert_eq!(
            (local.id(), local.origin()),
            ("localhost", "http://localhost:8080")
        );
        let public = party(Some("https://auth.example.com/gate"), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (public.id(), public.origin()),
            ("auth.example.com", "https://auth.example.com")
        );
        let parent = party(Some("https://auth.example.com"), Some("Example.com"))
            .unwrap()
            .unwrap();
        assert_eq!(parent.id(), "example.com");
        assert!(party(Some("https://auth.example.com"), Some(" "))
            .unwrap()
            .is_some());
    }

    #[test]
    fn bad_ids_are_refused() {
        for (url, id) in [
            (None, "example.com"),
            (Some("https://auth.example.com"), "127.0.0.1"),
            (Some("https://auth.example.com"), "::1"),
            (Some("http://127.0.0.1:8080"), "localhost"),
            (Some("https://auth.example.com"), "other.com"),
            (Some("https://auth.example.com"), "ample.com"),
            (Some("https://auth.example.com"), "com"),
            (Some("https://auth.example.com"), "https://example.com"),
            (Some("https://auth.example.com"), "example.com:443"),
            (Some("https://auth.example.com"), "sub.auth.example.com"),
        ] {
            assert!(party(url, Some(id)).is_err(), "{url:?} {id:?}");
        }
    }
}
