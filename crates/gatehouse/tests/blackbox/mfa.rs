//! Multi-factor sign-in from outside (API.md, "Multi-factor sign-in"): the real binary on
//! both backends, with TOTP codes computed here by an RFC 6238 of the test's own (HMAC-SHA1
//! over the base-32 secret the enrolment answers), not by Gatehouse's.

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use gatehouse_storage::testing::{EmptyDatabase, TestBackend};

use crate::server::Server;

const PASSWORD: &str = "tr0mbone-kettle";
const ADMIN: &str = "admin@example.com";

/// RFC 4648 base 32, as authenticator apps read it.
fn base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u64, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .expect("a base-32 character");
        buffer = (buffer << 5) | value as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// The RFC 6238 code (SHA-1, 6 digits) of `key` for 30-second step `step`.
fn totp(key: &[u8], step: u64) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", binary % 1_000_000)
}

/// The current step, once at least 10 seconds of it are left (so that a test's codes mean
/// the same step from its start to its end).
fn settled_step() -> u64 {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    if now() % 30 >= 20 {
        std::thread::sleep(std::time::Duration::from_secs(31 - now() % 30));
    }
    now() / 30
}

#[test]
fn the_tests_own_totp_matches_rfc_6238() {
    // Appendix B, SHA-1, the 8-digit codes' last 6 digits.
    let key = b"12345678901234567890";
    assert_eq!(totp(key, 59 / 30), "287082");
    assert_eq!(totp(key, 1_111_111_109 / 30), "081804");
    assert_eq!(totp(key, 2_000_000_000 / 30), "279037");
    assert_eq!(base32("GEZDGNBVGY3TQOJQ"), b"1234567890");
}

struct Enrolled {
    key: Vec<u8>,
    secret: String,
    step: u64,
    recovery_codes: Vec<String>,
}

/// Turns TOTP on for the holder of `token`; the confirming code is the previous step's.
fn enrol(server: &Server, token: &str) -> Enrolled {
    let started = server.send_json(
        "POST",
        "/api/auth/me/mfa/totp",
        Some(token),
        &json!({"password": PASSWORD}),
    );
    assert_eq!(started.status, 200, "{started:?}");
    let secret = started.body["secret"].as_str().unwrap().to_owned();
    let uri = started.body["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    assert!(
        uri.contains("algorithm=SHA1") && uri.contains("digits=6") && uri.contains("period=30")
    );
    let key = base32(&secret);
    let step = settled_step();
    let confirmed = server.send_json(
        "POST",
        "/api/auth/me/mfa/totp/confirm",
        Some(token),
        &json!({"code": totp(&key, step - 1)}),
    );
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    let recovery_codes: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery_codes.len(), 10);
    Enrolled {
        key,
        secret,
        step,
        recovery_codes,
    }
}

/// A login that must answer `mfa_required`: its token.
fn mfa_token(server: &Server, email: &str) -> String {
    let reply = server.login(email, PASSWORD);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["mfa_required"], true, "{reply:?}");
    assert_eq!(reply.body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(reply.body["expires_in"], 300);
    assert_eq!(reply.body.get("access_token"), None);
    reply.body["mfa_token"].as_str().unwrap().to_owned()
}

fn second_step(server: &Server, token: &str, code: &str) -> crate::server::Reply {
    server.send_json(
        "POST",
        "/api/auth/login/mfa",
        None,
        &json!({"mfa_token": token, "code": code}),
    )
}

/// Enrol, sign in with a code, a code is taken once, a recovery code once, five wrong
/// codes kill the token; the secret never reaches the log; after a restart it still opens.
fn totp_signs_in_with_a_second_step(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[]);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let token = server.token(ADMIN, PASSWORD);
    let enrolled = enrol(&server, &token);
    let me = server.get("/api/auth/me", Some(&token));
    assert_eq!(me.body["mfa_enabled"], true, "{me:?}");

    let mfa = mfa_token(&server, ADMIN);
    let wrong = second_step(&server, &mfa, "12345");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(wrong.body["code"], "invalid_code");
    let signed_in = second_step(&server, &mfa, &totp(&enrolled.key, enrolled.step));
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let access = signed_in.body["access_token"].as_str().unwrap().to_owned();
    assert!(signed_in.body["refresh_token"].is_string());
    assert_eq!(server.get("/api/auth/me", Some(&access)).status, 200);
    // The token is spent; the code is used.
    let again = second_step(&server, &mfa, &totp(&enrolled.key, enrolled.step + 1));
    assert_eq!(again.status, 401, "{again:?}");
    let mfa = mfa_token(&server, ADMIN);
    let replayed = second_step(&server, &mfa, &totp(&enrolled.key, enrolled.step));
    assert_eq!(
        replayed.status, 401,
        "a code is accepted once: {replayed:?}"
    );
    // A recovery code, once.
    let recovered = second_step(&server, &mfa, &enrolled.recovery_codes[0]);
    assert_eq!(recovered.status, 200, "{recovered:?}");
    let mfa = mfa_token(&server, ADMIN);
    let spent = second_step(&server, &mfa, &enrolled.recovery_codes[0]);
    assert_eq!(spent.status, 401, "{spent:?}");
    // Dead after five wrong codes (the wrong one above was the first).
    for _ in 0..4 {
        assert_eq!(second_step(&server, &mfa, "000000x").status, 401);
    }
    let dead = second_step(&server, &mfa, &totp(&enrolled.key, enrolled.step + 1));
    assert_eq!(dead.status, 401, "{dead:?}");
    let failures = server.get("/api/auth/audit?action=login_mfa_failed", Some(&access));
    assert!(failures.body.as_array().unwrap().len() >= 5, "{failures:?}");

    // Restarted, the sealed secret still opens (the JWT secret is in the database).
    let log = server.stop_and_read_log();
    assert!(
        !log.contains(&enrolled.secret),
        "the secret reached the log"
    );
    let server = Server::start(&db, &[]);
    std::thread::sleep(std::time::Duration::from_secs(2)); // the lock of the wrong codes
    let mfa = mfa_token(&server, ADMIN);
    let next = second_step(&server, &mfa, &totp(&enrolled.key, enrolled.step + 1));
    assert_eq!(next.status, 200, "after a restart: {next:?}");
}

/// The operator's lockout recovery: `gatehouse users reset-mfa`; and a changed JWT secret
/// is told (503 `mfa_unavailable`), never a 500, until the factors are reset.
fn the_operator_resets_a_locked_out_user(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let first = [(
        "GATEHOUSE_JWT_SECRET",
        "a first secret of thirty-two bytes!!",
    )];
    let server = Server::start(&db, &first);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let token = server.token(ADMIN, PASSWORD);
    let enrolled = enrol(&server, &token);
    server.stop();
    let second = [(
        "GATEHOUSE_JWT_SECRET",
        "another secret of thirty-two bytes!",
    )];
    let server = Server::start(&db, &second);
    let mfa = mfa_token(&server, ADMIN);
    let unreadable = second_step(&server, &mfa, &totp(&enrolled.key, enrolled.step));
    assert_eq!(unreadable.status, 503, "{unreadable:?}");
    assert_eq!(unreadable.body["code"], "mfa_unavailable");
    assert!(
        server.log_once_it_has("reset-mfa").contains("reset-mfa"),
        "the log says what to do"
    );

    let reset = crate::cli::gatehouse_with(
        &db.url_string(),
        &["users", "reset-mfa", ADMIN],
        &second,
        "",
    );
    assert_eq!(reset.code, 0, "{reset:?}");
    assert!(
        reset.stdout.contains("reset the second factors of"),
        "{reset:?}"
    );
    let login = server.login(ADMIN, PASSWORD);
    assert!(login.body["access_token"].is_string(), "{login:?}");
    let token = login.body["access_token"].as_str().unwrap();
    assert_eq!(
        server.get("/api/auth/me", Some(token)).body["mfa_enabled"],
        false
    );
    let audit = server.get("/api/auth/audit?action=mfa_reset", Some(token));
    assert_eq!(audit.body.as_array().unwrap().len(), 1, "{audit:?}");
    assert_eq!(
        audit.body[0]["actor_id"],
        Value::Null,
        "the operator is nobody"
    );
}

/// `GATEHOUSE_REQUIRE_MFA_FOR_ADMINS`: admin routes answer 403 `mfa_enrollment_required`
/// until the admin enrols; `/me` stays open; an admin resets another user's factors.
fn admins_must_enrol_when_required(backend: TestBackend) {
    let db = EmptyDatabase::new(backend);
    let server = Server::start(&db, &[("GATEHOUSE_REQUIRE_MFA_FOR_ADMINS", "true")]);
    assert_eq!(server.register(ADMIN, PASSWORD).status, 201);
    let token = server.token(ADMIN, PASSWORD);
    let refused = server.get("/api/auth/users", Some(&token));
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body["code"], "mfa_enrollment_required");
    assert_eq!(server.get("/api/auth/me", Some(&token)).status, 200);
    let enrolled = enrol(&server, &token);
    let listed = server.get("/api/auth/users", Some(&token));
    assert_eq!(listed.status, 200, "{listed:?}");

    // Ann enrols; the admin resets her factors: her sessions end.
    let ann = server.register("ann@example.com", PASSWORD).body["id"].clone();
    let approved = server.send_json(
        "PUT",
        &format!("/api/auth/users/{ann}"),
        Some(&token),
        &json!({"status": "approved"}),
    );
    assert_eq!(approved.status, 200, "{approved:?}");
    let ann_token = server.token("ann@example.com", PASSWORD);
    enrol(&server, &ann_token);
    let reset = server.send_json(
        "DELETE",
        &format!("/api/auth/users/{ann}/mfa"),
        Some(&token),
        &Value::Null,
    );
    assert_eq!(reset.status, 204, "{reset:?}");
    assert_eq!(server.get("/api/auth/me", Some(&ann_token)).status, 401);
    let login = server.login("ann@example.com", PASSWORD);
    assert!(login.body["access_token"].is_string(), "{login:?}");

    // Turning TOTP off takes the password and a code.
    let off = server.send_json(
        "DELETE",
        "/api/auth/me/mfa/totp",
        Some(&token),
        &json!({"password": PASSWORD, "code": totp(&enrolled.key, enrolled.step)}),
    );
    assert_eq!(off.status, 204, "{off:?}");
    let refused = server.get("/api/auth/users", Some(&token));
    assert_eq!(
        refused.body["code"], "mfa_enrollment_required",
        "{refused:?}"
    );
}

gatehouse_storage::backend_tests!(
    totp_signs_in_with_a_second_step,
    the_operator_resets_a_locked_out_user,
    admins_must_enrol_when_required,
);
