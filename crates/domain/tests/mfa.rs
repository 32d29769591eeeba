//! Multi-factor sign-in over the in-memory store: enrolment behind the password, the
//! login's second step and its throttling, recovery codes, the reset, and the admins' rule.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;

use gatehouse_domain::testing::{CurrentUserBlocking, InMemoryStore, PlainHasher};
use gatehouse_domain::totp::{step_of, TotpSecret, DIGITS};
use gatehouse_domain::{
    Actor, AuditAction, AuditQuery, Email, Error, Hs256Tokens, JwtSecret, LoginStep, MfaKeys,
    MfaPolicy, Origin, Password, Session, TokenTtl, UserService,
};

const PASSWORD: &str = "tr0mbone-kettle";

fn service(require_for_admins: bool) -> UserService {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    UserService::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(PlainHasher),
        tokens,
    )
    .with_mfa(MfaPolicy {
        keys: MfaKeys::derive(&[b's'; 32]).unwrap(),
        issuer: "auth.example.com".into(),
        require_for_admins,
    })
}

fn from() -> Origin {
    Origin::address("192.0.2.7")
}

/// Registers `email` (the first is the admin) and signs them in: the session and its
/// access token.
fn signed_in(users: &UserService, email: &str) -> (Session, String) {
    users
        .register(
            Email::parse(email).unwrap(),
            &Password::parse(PASSWORD).unwrap(),
            &from(),
        )
        .unwrap();
    let tokens = users.login(email, PASSWORD, &from()).unwrap();
    let session = users.current_user_blocking(&tokens.access.token).unwrap();
    (session, tokens.access.token)
}

/// The code of `secret` at `offset` steps from now.
fn code(secret: &TotpSecret, offset: i64) -> String {
    secret.code_at_step(step_of(gatehouse_domain::now()) + offset, DIGITS)
}

/// Enrols the session's user; the confirming code is the previous step's.
fn enrol(users: &UserService, session: &Session) -> (TotpSecret, Vec<String>) {
    // Well inside a step, so that the test's codes mean the steps they were meant for.
    let into = gatehouse_domain::now().timestamp().rem_euclid(30);
    if into >= 25 {
        std::thread::sleep(std::time::Duration::from_secs(
            u64::try_from(31 - into).unwrap(),
        ));
    }
    let change = users.begin_password_change(session, &from()).unwrap();
    let verified = users.check_current_password(&change, PASSWORD).unwrap();
    let enrolment = users.begin_totp_enrolment(change, verified).unwrap();
    assert!(enrolment.otpauth_uri.contains("issuer=auth.example.com"));
    let secret = TotpSecret::from_base32(&enrolment.secret).unwrap();
    let codes = users
        .confirm_totp(session, &code(&secret, -1), &from())
        .unwrap();
    (secret, codes)
}

fn mfa_token(users: &UserService, email: &str) -> String {
    match users
        .login_in_steps(email, PASSWORD, None, &from())
        .unwrap()
    {
        LoginStep::MfaRequired(challenge) => {
            assert_eq!(challenge.methods, ["totp", "recovery_code"]);
            assert_eq!(challenge.expires_in, 300);
            challenge.token.expose().to_owned()
        }
        LoginStep::Done(_) => panic!("no second step"),
    }
}

fn audited(users: &UserService, action: AuditAction) -> usize {
    users
        .list_audit(
            Actor::Operator,
            &AuditQuery {
                action: Some(action),
                ..AuditQuery::default()
            },
        )
        .unwrap()
        .items
        .len()
}

#[test]
fn a_password_opens_only_the_second_step_once_totp_is_on() {
    let users = service(false);
    let (admin, _) = signed_in(&users, "admin@example.com");
    let (secret, codes) = enrol(&users, &admin);
    assert_eq!(codes.len(), 10);
    assert!(matches!(
        users.login("admin@example.com", PASSWORD, &from()),
        Err(Error::MfaRequired)
    ));
    let token = mfa_token(&users, "admin@example.com");
    assert!(matches!(
        users.finish_login_mfa(&token, "000000x", &from()),
        Err(Error::InvalidMfaCode)
    ));
    let signed = users
        .finish_login_mfa(&token, &code(&secret, 0), &from())
        .unwrap();
    assert!(users
        .current_user_blocking(&signed.tokens.access.token)
        .is_ok());
    // Spent; and the code is used.
    assert!(matches!(
        users.finish_login_mfa(&token, &code(&secret, 1), &from()),
        Err(Error::InvalidMfaCode)
    ));
    let token = mfa_token(&users, "admin@example.com");
    assert!(matches!(
        users.finish_login_mfa(&token, &code(&secret, 0), &from()),
        Err(Error::InvalidMfaCode)
    ));
    users.finish_login_mfa(&token, &codes[9], &from()).unwrap();
    assert_eq!(audited(&users, AuditAction::MfaEnabled), 1);
    assert_eq!(audited(&users, AuditAction::LoginMfaFailed), 2);
}

#[test]
fn wrong_codes_count_as_failed_logins_that_a_right_password_does_not_forgive() {
    let users = service(false);
    let (admin, _) = signed_in(&users, "admin@example.com");
    let (secret, _) = enrol(&users, &admin);
    let token = mfa_token(&users, "admin@example.com");
    for _ in 0..5 {
        assert!(matches!(
            users.finish_login_mfa(&token, "ABCDE-FGHJK", &from()),
            Err(Error::InvalidMfaCode)
        ));
    }
    // Dead token; a locked account (five failures): the password is refused for now.
    assert!(matches!(
        users.finish_login_mfa(&token, &code(&secret, 0), &from()),
        Err(Error::InvalidMfaCode)
    ));
    assert!(matches!(
        users.login_in_steps("admin@example.com", PASSWORD, None, &from()),
        Err(Error::Throttled { .. })
    ));
}

#[test]
fn enrolment_needs_the_password_and_turning_off_a_code() {
    let users = service(false);
    let (admin, _) = signed_in(&users, "admin@example.com");
    let change = users.begin_password_change(&admin, &from()).unwrap();
    let verified = users.check_current_password(&change, "wrong one").unwrap();
    assert!(matches!(
        users.begin_totp_enrolment(change, verified),
        Err(Error::WrongCurrentPassword)
    ));
    assert!(matches!(
        users.confirm_totp(&admin, "123456", &from()),
        Err(Error::MfaNotEnabled)
    ));
    let (secret, _) = enrol(&users, &admin);
    let change = users.begin_password_change(&admin, &from()).unwrap();
    assert!(matches!(
        users.begin_totp_enrolment(change, true),
        Err(Error::MfaAlreadyEnabled)
    ));
    let change = users.begin_password_change(&admin, &from()).unwrap();
    assert!(matches!(
        users.disable_totp(change, true, "12"),
        Err(Error::InvalidCode)
    ));
    let change = users.begin_password_change(&admin, &from()).unwrap();
    users.disable_totp(change, true, &code(&secret, 0)).unwrap();
    assert_eq!(users.recovery_codes_left(&admin).unwrap(), None);
    assert!(users.login("admin@example.com", PASSWORD, &from()).is_ok());
    assert_eq!(audited(&users, AuditAction::MfaDisabled), 1);
}

#[test]
fn the_operator_resets_and_admins_must_enrol_when_required() {
    let users = service(true);
    let (admin, access) = signed_in(&users, "admin@example.com");
    assert!(matches!(
        users.ensure_admin_may_act(&admin.user),
        Err(Error::MfaEnrollmentRequired)
    ));
    enrol(&users, &admin);
    let token = mfa_token(&users, "admin@example.com");
    let user = users
        .reset_mfa(Actor::Operator, admin.user.id, &Origin::default())
        .unwrap();
    assert!(!user.mfa_enabled);
    // The waiting login is gone with the factors; the old session ended.
    assert!(matches!(
        users.finish_login_mfa(&token, "123456", &from()),
        Err(Error::InvalidMfaCode)
    ));
    assert!(users.current_user_blocking(&access).is_err());
    assert!(users.login("admin@example.com", PASSWORD, &from()).is_ok());
    assert_eq!(audited(&users, AuditAction::MfaReset), 1);
}
