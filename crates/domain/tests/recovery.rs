//! Recovery and verification over the in-memory store: the codes a mail carries, what
//! they do, and every way a code is refused (one answer for all).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests panic to fail

use std::sync::Arc;

use chrono::Duration;
use gatehouse_domain::testing::{InMemoryStore, PlainHasher};
use gatehouse_domain::{
    Actor, AuditAction, AuditQuery, DueMail, Email, Error, Hs256Tokens, JwtSecret, MailKind,
    MailPolicy, NewUserRequest, Origin, Password, RecoveryPolicy, TokenTtl, User, UserService,
    UserStatus,
};

const PASSWORD: &str = "tr0mbone-kettle";
const NEW_PASSWORD: &str = "saxophone-teapot";

fn service(mail: bool, recovery: RecoveryPolicy) -> UserService {
    let secret = JwtSecret::new(vec![b's'; 32]).unwrap();
    let tokens = Arc::new(Hs256Tokens::new(&secret, TokenTtl::DEFAULT).unwrap());
    let users = UserService::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(PlainHasher),
        tokens,
    );
    if mail {
        users
            .with_mail(MailPolicy {
                public_url: Some("https://auth.example.com".into()),
                digest_interval: Duration::minutes(1),
            })
            .with_recovery(recovery)
    } else {
        users
    }
}

fn register(users: &UserService, who: &str) -> User {
    users
        .register(
            Email::parse(who).unwrap(),
            &Password::parse(PASSWORD).unwrap(),
            &Origin::default(),
        )
        .unwrap()
}

fn mails(users: &UserService, kind: MailKind) -> Vec<DueMail> {
    let now = gatehouse_domain::now();
    users
        .claim_mails(now, now + Duration::seconds(1), 1000)
        .unwrap()
        .into_iter()
        .filter(|mail| mail.kind == kind)
        .collect()
}

/// The code a mail carries (`Your code: ABCD-EFGH`).
fn code_in(mail: &DueMail) -> String {
    let at = mail.body.find("Your code: ").expect("a code in the mail") + "Your code: ".len();
    mail.body[at..at + 9].to_owned()
}

fn audited(users: &UserService, action: AuditAction) -> usize {
    let admin = users
        .find_user(Actor::Operator, &"admin@example.com".parse().unwrap())
        .unwrap();
    users
        .list_audit(
            Actor::User(admin.id),
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
fn a_forgotten_password_is_reset_with_the_mailed_code_and_every_session_ends() {
    let users = service(true, RecoveryPolicy::default());
    register(&users, "admin@example.com");
    let ann = register(&users, "ann@example.com");
    users
        .update_user(
            Actor::Operator,
            ann.id,
            &gatehouse_domain::UserChanges {
                status: Some(UserStatus::Approved),
                ..Default::default()
            },
            &Origin::default(),
        )
        .unwrap();
    let session = users
        .login("ann@example.com", PASSWORD, &Origin::default())
        .unwrap();

    users
        .forgot_password(
            &Email::parse("ann@example.com").unwrap(),
            &Origin::default(),
        )
        .unwrap();
    let sent = mails(&users, MailKind::PasswordReset);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "ann@example.com");
    assert_eq!(sent[0].subject, "Your password reset code");
    assert!(
        sent[0].body.contains("expires in 15 minutes"),
        "{}",
        sent[0].body
    );
    let code = code_in(&sent[0]);

    let new = Password::parse(NEW_PASSWORD).unwrap();
    // Wrong, then right (typed in lower case, without its hyphen).
    assert!(matches!(
        users.reset_password_with_code("ann@example.com", "ZZZZ-ZZZZ", &new, &Origin::default()),
        Err(Error::InvalidCode)
    ));
    users
        .reset_password_with_code(
            "ann@example.com",
            &code.replace('-', "").to_lowercase(),
            &new,
            &Origin::default(),
        )
        .unwrap();
    assert!(
        matches!(
            users.reset_password_with_code("ann@example.com", &code, &new, &Origin::default()),
            Err(Error::InvalidCode)
        ),
        "spent"
    );
    assert!(users
        .login("ann@example.com", PASSWORD, &Origin::default())
        .is_err());
    users
        .login("ann@example.com", NEW_PASSWORD, &Origin::default())
        .unwrap();
    // The session from before the reset ended.
    assert!(users
        .refresh(session.refresh_token.expose(), &Origin::default())
        .is_err());
    assert_eq!(audited(&users, AuditAction::PasswordRecovered), 1);
}

#[test]
fn unknown_and_disabled_accounts_get_the_same_answer_and_no_mail() {
    let users = service(true, RecoveryPolicy::default());
    register(&users, "admin@example.com");
    let bob = register(&users, "bob@example.com");
    users
        .update_user(
            Actor::Operator,
            bob.id,
            &gatehouse_domain::UserChanges {
                status: Some(UserStatus::Disabled),
                ..Default::default()
            },
            &Origin::default(),
        )
        .unwrap();
    for who in ["nobody@example.com", "bob@example.com"] {
        users
            .forgot_password(&Email::parse(who).unwrap(), &Origin::default())
            .unwrap();
    }
    assert!(mails(&users, MailKind::PasswordReset).is_empty());
    let new = Password::parse(NEW_PASSWORD).unwrap();
    for (email, code) in [
        ("nobody@example.com", "ABCD-2345"),
        ("not an email", "ABCD-2345"),
        ("bob@example.com", "not a code"),
    ] {
        assert!(matches!(
            users.reset_password_with_code(email, code, &new, &Origin::default()),
            Err(Error::InvalidCode)
        ));
    }
}

#[test]
fn a_code_dies_after_five_wrong_tries_and_three_an_hour_are_sent() {
    let users = service(true, RecoveryPolicy::default());
    register(&users, "admin@example.com");
    register(&users, "ann@example.com");
    let email = Email::parse("ann@example.com").unwrap();
    for _ in 0..5 {
        users.forgot_password(&email, &Origin::default()).unwrap();
    }
    let sent = mails(&users, MailKind::PasswordReset);
    assert_eq!(sent.len(), 3, "three an hour, then silently none");
    let new = Password::parse(NEW_PASSWORD).unwrap();
    for _ in 0..5 {
        assert!(users
            .reset_password_with_code("ann@example.com", "ZZZZ-ZZZZ", &new, &Origin::default())
            .is_err());
    }
    for mail in &sent {
        assert!(
            matches!(
                users.reset_password_with_code(
                    "ann@example.com",
                    &code_in(mail),
                    &new,
                    &Origin::default()
                ),
                Err(Error::InvalidCode)
            ),
            "dead after five wrong tries"
        );
    }
}

#[test]
fn registration_sends_a_verification_code_and_the_code_verifies() {
    let users = service(true, RecoveryPolicy::default());
    register(&users, "admin@example.com");
    let ann = register(&users, "ann@example.com");
    assert!(!ann.email_verified);
    let sent: Vec<DueMail> = mails(&users, MailKind::EmailVerification)
        .into_iter()
        .filter(|m| m.to == "ann@example.com")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].subject, "Verify your email address");
    assert!(matches!(
        users.verify_email("ann@example.com", "ZZZZ-ZZZZ", &Origin::default()),
        Err(Error::InvalidCode)
    ));
    users
        .verify_email("ann@example.com", &code_in(&sent[0]), &Origin::default())
        .unwrap();
    let ann = users
        .find_user(Actor::Operator, &"ann@example.com".parse().unwrap())
        .unwrap();
    assert!(ann.email_verified);
    assert_eq!(
        ann.status,
        UserStatus::Pending,
        "no domain is auto-approved"
    );
    assert_eq!(audited(&users, AuditAction::EmailVerified), 1);
    // Verified: a resend sends nothing.
    users
        .resend_verification(
            &Email::parse("ann@example.com").unwrap(),
            &Origin::default(),
        )
        .unwrap();
    assert!(mails(&users, MailKind::EmailVerification).is_empty());
}

#[test]
fn an_auto_approved_domain_is_approved_on_verifying_and_required_verification_gates_login() {
    let users = service(
        true,
        RecoveryPolicy {
            require_verified_email: true,
            auto_approve_domains: vec!["example.org".into()],
            ..RecoveryPolicy::default()
        },
    );
    let admin = register(&users, "admin@example.com");
    register(&users, "ann@example.org");
    register(&users, "bob@example.com");
    // Unverified: refused after the password check; a wrong password is still 401.
    assert!(matches!(
        users.login("ann@example.org", PASSWORD, &Origin::default()),
        Err(Error::EmailUnverified)
    ));
    assert!(matches!(
        users.login("ann@example.org", "wrong-password-1", &Origin::default()),
        Err(Error::InvalidCredentials)
    ));
    let codes = mails(&users, MailKind::EmailVerification);
    let code_for = |who: &str| code_in(codes.iter().find(|m| m.to == who).unwrap());
    users
        .verify_email(
            "ann@example.org",
            &code_for("ann@example.org"),
            &Origin::default(),
        )
        .unwrap();
    users
        .verify_email(
            "bob@example.com",
            &code_for("bob@example.com"),
            &Origin::default(),
        )
        .unwrap();
    let ann = users
        .find_user(Actor::Operator, &"ann@example.org".parse().unwrap())
        .unwrap();
    assert_eq!(ann.status, UserStatus::Approved);
    assert_eq!(ann.approved_by, None);
    let bob = users
        .find_user(Actor::Operator, &"bob@example.com".parse().unwrap())
        .unwrap();
    assert_eq!(bob.status, UserStatus::Pending);
    users
        .login("ann@example.org", PASSWORD, &Origin::default())
        .unwrap();
    assert!(matches!(
        users.login("bob@example.com", PASSWORD, &Origin::default()),
        Err(Error::AccountPending)
    ));
    assert_eq!(audited(&users, AuditAction::UserAutoApproved), 1);
    let decisions = mails(&users, MailKind::Decision);
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].to, "ann@example.org");
    // The operator's CLI verifies too (the admin, unverified, can log in after).
    assert!(matches!(
        users.login("admin@example.com", PASSWORD, &Origin::default()),
        Err(Error::EmailUnverified)
    ));
    users.mark_email_verified(admin.id).unwrap();
    users
        .login("admin@example.com", PASSWORD, &Origin::default())
        .unwrap();
}

#[test]
fn users_an_admin_creates_start_verified_and_without_a_mailer_nothing_is_enabled() {
    let users = service(true, RecoveryPolicy::default());
    let admin = register(&users, "admin@example.com");
    let made = users
        .create_user(
            Actor::User(admin.id),
            NewUserRequest {
                email: Email::parse("cat@example.com").unwrap(),
                password: Password::parse(PASSWORD).unwrap(),
                is_admin: false,
                status: UserStatus::Approved,
            },
            &Origin::default(),
        )
        .unwrap();
    assert!(made.email_verified);

    let bare = service(false, RecoveryPolicy::default());
    register(&bare, "admin@example.com");
    let email = Email::parse("admin@example.com").unwrap();
    assert!(matches!(
        bare.forgot_password(&email, &Origin::default()),
        Err(Error::NotEnabled(_))
    ));
    assert!(matches!(
        bare.verify_email("admin@example.com", "ABCD-2345", &Origin::default()),
        Err(Error::NotEnabled(_))
    ));
    assert!(!bare.recovery_enabled());
}

#[test]
fn with_verification_required_admins_hear_of_a_user_once_verified() {
    let users = service(
        true,
        RecoveryPolicy {
            require_verified_email: true,
            ..RecoveryPolicy::default()
        },
    );
    let admin = register(&users, "admin@example.com");
    users.mark_email_verified(admin.id).unwrap();
    register(&users, "ann@example.com");
    assert_eq!(users.pending_count(Actor::User(admin.id)).unwrap(), 0);
    let now = gatehouse_domain::now();
    assert_eq!(
        users.queue_admin_digest(now).unwrap(),
        0,
        "nobody verified waits"
    );
    let code = code_in(
        mails(&users, MailKind::EmailVerification)
            .iter()
            .find(|m| m.to == "ann@example.com")
            .unwrap(),
    );
    users
        .verify_email("ann@example.com", &code, &Origin::default())
        .unwrap();
    assert_eq!(users.pending_count(Actor::User(admin.id)).unwrap(), 1);
    assert_eq!(
        users.queue_admin_digest(gatehouse_domain::now()).unwrap(),
        1
    );
    let digests = mails(&users, MailKind::AdminDigest);
    assert_eq!(digests.len(), 1);
    assert_eq!(
        digests[0].subject,
        "ann@example.com is waiting for approval"
    );
}
