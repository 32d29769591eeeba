//! How another service verifies Gatehouse's tokens with nothing but this crate and the
//! JWKS document Gatehouse serves at `/.well-known/jwks.json` (with
//! `GATEHOUSE_JWT_ALGORITHM=EdDSA`).
//!
//! ```sh
//! curl -s http://127.0.0.1:8080/.well-known/jwks.json > jwks.json
//! cargo run -p gatehouse-domain --example verify_with_jwks -- jwks.json "$TOKEN"
//! ```
//!
//! Without arguments it plays both sides: it makes a key, signs a token as Gatehouse would,
//! publishes the JWKS document, and verifies the token from that document alone.
//!
//! The verifier checks the signature (by `kid`), the algorithm (EdDSA only), `exp` and
//! `iat`. It cannot see revocations (logout, an ended session, password changes, disabled
//! users): it keeps accepting such a token until its `exp`, at most one access-token
//! lifetime (`GATEHOUSE_TOKEN_TTL`, 15 minutes by default; keep it short). A service that
//! must honour those immediately asks Gatehouse's `GET /api/auth/me` instead. Each token
//! names its session in `sid` (the id `GET /api/auth/me/sessions` lists), so a service
//! may key its own per-session state on it.

use std::process::ExitCode;
use std::sync::Arc;

use gatehouse_domain::testing::{InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Ed25519Tokens, Email, JwksVerifier, Origin, Password, SigningKey, TokenService, TokenTtl,
    UserService,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (document, token) = match args {
        [path, token] => {
            let document =
                std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
            (document, token.clone())
        }
        [] => demo()?,
        _ => return Err("usage: verify_with_jwks [JWKS_FILE TOKEN]".into()),
    };
    // This is all another service needs: the JWKS document and the token.
    let verifier = JwksVerifier::from_json(&document).map_err(|e| format!("bad JWKS: {e}"))?;
    let claims = verifier
        .verify(&token)
        .map_err(|_| "token refused: not signed by these keys, expired, or malformed".to_owned())?;
    println!(
        "valid token for user {} in session {} (issued {}, expires {})",
        claims.user_id, claims.session_id, claims.issued_at, claims.expires_at
    );
    Ok(())
}

/// Gatehouse's side: a key, a user, a token, and the published JWKS document.
fn demo() -> Result<(String, String), String> {
    let now = chrono::Utc::now();
    let key = SigningKey::generate(now, now).map_err(|e| e.to_string())?;
    let tokens =
        Arc::new(Ed25519Tokens::new(&[key], TokenTtl::DEFAULT, now).map_err(|e| e.to_string())?);
    let users = UserService::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(PlainHasher),
        tokens.clone(),
    );
    let email = Email::parse("ada@example.com").map_err(|e| e.to_string())?;
    let password = Password::parse("analytical engine").map_err(|e| e.to_string())?;
    users
        .register(email, &password, &Origin::default())
        .map_err(|e| e.to_string())?;
    let token = users
        .login("ada@example.com", "analytical engine", &Origin::default())
        .map_err(|e| e.to_string())?
        .access
        .token;
    let document = serde_json::to_string_pretty(&tokens.jwks()).map_err(|e| e.to_string())?;
    println!("JWKS served by Gatehouse:\n{document}");
    Ok((document, token))
}
