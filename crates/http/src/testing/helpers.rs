//! The app under test, built in-process exactly as the binary builds it (through
//! [`configure`](crate::configure)), over the store it is given and a fast fake hasher, plus
//! small helpers to call it and to check what it answers.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use crate::{AppState, HashingPool, MetricsToken, TrustedProxies};
use actix_web::body::{BoxBody, MessageBody as _};
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web::Bytes;
use actix_web::App;
use gatehouse_domain::testing::PlainHasher;
use gatehouse_domain::{Hs256Tokens, JwtSecret, ThrottlePolicy, TokenTtl, UserService, UserStore};
use serde_json::{json, Value};

/// The password every helper-made user has: 21 bytes, well inside 8..=72.
pub const PASSWORD: &str = "correct horse battery";
/// The email of the first user, who becomes the admin.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// The token lifetime the contract promises by default: seven days.
pub const FIFTEEN_MINUTES: u64 = 15 * 60;

/// The keys of `UserPublic`, and no others.
pub const USER_PUBLIC_KEYS: [&str; 13] = [
    "approved_at",
    "approved_by",
    "created_at",
    "decision_note",
    "email",
    "email_verified",
    "id",
    "is_admin",
    "mfa_enabled",
    "reason",
    "rejected_at",
    "rejected_by",
    "status",
];

/// The token secret of an app built by [`AppOptions::new`].
pub const SECRET: &[u8] = b"an http test secret of 32+ bytes!!";

/// How to build an app; [`AppOptions::new`] gives what nearly every test wants.
pub struct AppOptions {
    pub store: Arc<dyn UserStore>,
    pub secret: Vec<u8>,
    pub hashing: HashingPool,
    /// The throttling limits (the contract's defaults unless a test says otherwise).
    pub throttle: ThrottlePolicy,
    /// The reverse proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: TrustedProxies,
    /// The origins allowed cross-origin requests (none by default: no CORS).
    pub cors_origins: Vec<String>,
    /// The token `/metrics` requires (none by default: open).
    pub metrics_token: Option<MetricsToken>,
    /// The request-body deadline, which also bounds how long a listing waits for a client
    /// that stopped reading ([`DEFAULT_BODY_TIMEOUT`](crate::DEFAULT_BODY_TIMEOUT) by default).
    pub body_timeout: std::time::Duration,
    /// How many requests may do database work at once (the app's default when `None`).
    pub database_slots: Option<usize>,
    /// Who may register on their own (`open` by default).
    pub registration: gatehouse_domain::RegistrationMode,
    /// The console's address, for invitation links (none by default); with a domain
    /// name it is the passkeys' origin and relying party too (passkeys are off without).
    pub public_url: Option<String>,
    /// `GATEHOUSE_WEBAUTHN_RP_ID` (none by default: the public URL's host).
    pub webauthn_rp_id: Option<String>,
    /// How long sessions live (the defaults: 30 days idle, 90 at most).
    pub sessions: gatehouse_domain::SessionPolicy,
    /// Whether webhook endpoints may point to non-public addresses (no by default).
    pub webhook_allow_private: bool,
    /// With a mailer's policy (none by default): mails are queued in the store (nothing
    /// sends them here), and recovery behaves as this says.
    pub mail: Option<gatehouse_domain::RecoveryPolicy>,
    /// `GATEHOUSE_REQUIRE_MFA_FOR_ADMINS` (off by default).
    pub require_mfa_for_admins: bool,
}

impl AppOptions {
    /// The defaults, over `store`.
    pub fn new(store: Arc<dyn UserStore>) -> Self {
        Self {
            store,
            secret: SECRET.to_vec(),
            hashing: HashingPool::new(2, 64),
            throttle: ThrottlePolicy::default(),
            trusted_proxies: TrustedProxies::default(),
            cors_origins: Vec::new(),
            metrics_token: None,
            body_timeout: crate::DEFAULT_BODY_TIMEOUT,
            database_slots: None,
            registration: gatehouse_domain::RegistrationMode::default(),
            public_url: None,
            webauthn_rp_id: None,
            sessions: gatehouse_domain::SessionPolicy::default(),
            webhook_allow_private: false,
            mail: None,
            require_mfa_for_admins: false,
        }
    }
}

impl std::fmt::Debug for AppOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppOptions")
            .field("throttle", &self.throttle)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cors_origins", &self.cors_origins)
            .finish_non_exhaustive()
    }
}

type Call = Box<dyn Fn(TestRequest) -> Pin<Box<dyn Future<Output = Resp>>>>;
type Start = Box<dyn Fn(TestRequest) -> Pin<Box<dyn Future<Output = Started>>>>;

/// One app over its store.
pub struct TestApp {
    call: Call,
    start: Start,
}

/// A response whose body has not been read yet (a client that has not read it).
pub struct Started {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: BoxBody,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").finish_non_exhaustive()
    }
}

/// A fresh app over `store` with the default options.
pub async fn spawn_app(store: Arc<dyn UserStore>) -> TestApp {
    spawn_app_with(AppOptions::new(store)).await
}

/// A fresh app built from `options`.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let mfa_keys = gatehouse_domain::MfaKeys::derive(&options.secret).expect("MFA keys");
    let secret = JwtSecret::new(options.secret).expect("a test secret of 32 bytes or more");
    let tokens = Hs256Tokens::new(&secret, TokenTtl::DEFAULT).expect("HS256 keys");
    let users = UserService::new(options.store, Arc::new(PlainHasher), Arc::new(tokens))
        .with_throttle(options.throttle)
        .with_registration_mode(options.registration)
        .with_session_policy(options.sessions)
        .with_mfa(gatehouse_domain::MfaPolicy {
            keys: mfa_keys,
            issuer: "Gatehouse".to_owned(),
            require_for_admins: options.require_mfa_for_admins,
        });
    let relying_party = crate::webauthn::RelyingParty::from_settings(
        options.public_url.as_deref(),
        options.webauthn_rp_id.as_deref(),
    )
    .expect("a valid relying party");
    let users = match relying_party {
        Some(party) => users.with_passkeys(Arc::new(party)),
        None => users,
    };
    let users = match options.mail {
        Some(recovery) => users
            .with_mail(gatehouse_domain::MailPolicy {
                public_url: options.public_url.clone(),
                digest_interval: chrono::Duration::minutes(1),
            })
            .with_recovery(recovery),
        None => users,
    };
    let mut state = AppState::new(users, options.hashing)
        .with_public_url(options.public_url)
        .with_webhook_allow_private(options.webhook_allow_private)
        .with_trusted_proxies(options.trusted_proxies)
        .with_cors_origins(options.cors_origins)
        .with_metrics_token(options.metrics_token)
        .with_body_timeout(options.body_timeout);
    if let Some(slots) = options.database_slots {
        state = state.with_database_slots(slots);
    }
    let service = Rc::new(test::init_service(App::new().configure(crate::configure(state))).await);
    let starting = service.clone();
    TestApp {
        start: Box::new(move |req| {
            let service = starting.clone();
            Box::pin(async move {
                let res = test::try_call_service(&*service, req.to_request())
                    .await
                    .expect("the service answers every request with a response");
                Started {
                    status: res.status(),
                    headers: res.headers().clone(),
                    body: res.into_body().boxed(),
                }
            })
        }),
        call: Box::new(move |req| {
            let service = service.clone();
            Box::pin(async move {
                let res = test::try_call_service(&*service, req.to_request())
                    .await
                    .expect("the service answers every request with a response");
                let status = res.status();
                let headers = res.headers().clone();
                let body = test::read_body(res).await;
                Resp {
                    status,
                    headers,
                    body,
                }
            })
        }),
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub email: String,
    pub token: String,
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON; panics (failing the test) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text, for messages and substring checks.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name`, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every header as sorted `(name, value)` pairs, for comparing responses whole
    /// (but `X-Request-Id`, which differs from response to response by design).
    pub fn header_list(&self) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| n.as_str() != "x-request-id")
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        list.sort();
        list
    }
}

/// Adds `Authorization: Bearer <token>`.
pub fn bearer(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {token}")))
}

fn authorized(req: TestRequest, token: Option<&str>) -> TestRequest {
    match token {
        Some(token) => bearer(req, token),
        None => req,
    }
}

impl TestApp {
    /// Sends any request.
    pub async fn send(&self, req: TestRequest) -> Resp {
        (self.call)(req).await
    }

    /// Sends any request and leaves its body unread.
    pub async fn start(&self, req: TestRequest) -> Started {
        (self.start)(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(authorized(TestRequest::get().uri(path), token))
            .await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(authorized(TestRequest::post().uri(path), token).set_json(body))
            .await
    }

    pub async fn put_json(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(authorized(TestRequest::put().uri(path), token).set_json(body))
            .await
    }

    pub async fn delete_json(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(authorized(TestRequest::delete().uri(path), token).set_json(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(authorized(TestRequest::delete().uri(path), token))
            .await
    }

    pub async fn register(&self, email: &str, password: &str) -> Resp {
        self.post_json(
            "/api/auth/register",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Logs in the OAuth2 way: a form with `username` and `password`.
    pub async fn login_form(&self, username: &str, password: &str) -> Resp {
        self.send(
            TestRequest::post()
                .uri("/api/auth/login")
                .set_form([("username", username), ("password", password)]),
        )
        .await
    }

    /// Logs in with a JSON body.
    pub async fn login_json(&self, email: &str, password: &str) -> Resp {
        self.post_json(
            "/api/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// A token for a user who may log in; fails the test otherwise.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let res = self.login_form(email, password).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "login of {email}: {}",
            res.text()
        );
        res.json()["access_token"]
            .as_str()
            .expect("access_token is a string")
            .to_owned()
    }

    /// Registers `email`, returning its id; fails the test unless it is created.
    pub async fn register_ok(&self, email: &str) -> i64 {
        let res = self.register(email, PASSWORD).await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "register {email}: {}",
            res.text()
        );
        res.json()["id"].as_i64().expect("id is an integer")
    }

    /// Registers the first user, the admin, and signs them in.
    pub async fn admin(&self) -> Session {
        let id = self.register_ok(ADMIN_EMAIL).await;
        Session {
            id,
            email: ADMIN_EMAIL.to_owned(),
            token: self.token(ADMIN_EMAIL, PASSWORD).await,
        }
    }

    /// Registers `email`, has `admin` approve them, and signs them in.
    pub async fn approved_user(&self, admin: &Session, email: &str) -> Session {
        let id = self.register_ok(email).await;
        self.update_ok(admin, id, &json!({"status": "approved"}))
            .await;
        Session {
            id,
            email: email.to_owned(),
            token: self.token(email, PASSWORD).await,
        }
    }

    /// An approved user whom `admin` also made an admin.
    pub async fn second_admin(&self, admin: &Session, email: &str) -> Session {
        let user = self.approved_user(admin, email).await;
        self.update_ok(admin, user.id, &json!({"is_admin": true}))
            .await;
        user
    }

    /// `PUT /users/{id}` that must succeed; returns the updated user.
    pub async fn update_ok(&self, admin: &Session, id: i64, body: &Value) -> Value {
        let res = self
            .put_json(&format!("/api/auth/users/{id}"), Some(&admin.token), body)
            .await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "update {id} with {body}: {}",
            res.text()
        );
        res.json()
    }

    /// Every user, as the admin's `GET /users` lists them.
    pub async fn users(&self, admin: &Session) -> Vec<Value> {
        let res = self.get("/api/auth/users", Some(&admin.token)).await;
        assert_eq!(res.status, StatusCode::OK, "list users: {}", res.text());
        res.json().as_array().expect("a JSON array").clone()
    }

    /// One user as listed, by id.
    pub async fn user(&self, admin: &Session, id: i64) -> Value {
        self.users(admin)
            .await
            .into_iter()
            .find(|u| u["id"] == id)
            .unwrap_or_else(|| panic!("user {id} is not listed"))
    }
}

/// Checks the security headers every response carries.
pub fn assert_security_headers(res: &Resp, context: &str) {
    assert_eq!(
        res.header("x-content-type-options"),
        Some("nosniff"),
        "{context}: X-Content-Type-Options"
    );
    assert_eq!(
        res.header("cache-control"),
        Some("no-store"),
        "{context}: Cache-Control"
    );
}

/// Checks an error response: its status, a JSON body with string `detail` and `code`,
/// `WWW-Authenticate: Bearer` exactly when it is a 401, and the security headers. Returns
/// the body.
pub fn assert_problem(res: &Resp, status: u16, code: &str, context: &str) -> Value {
    assert_eq!(
        res.status.as_u16(),
        status,
        "{context}: status (body {})",
        res.text()
    );
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{context}: content type {:?}",
        res.header("content-type")
    );
    let body = res.json();
    let detail = body["detail"].as_str();
    assert!(
        detail.is_some_and(|d| !d.is_empty()),
        "{context}: detail must be a non-empty string in {body}"
    );
    assert_eq!(
        body["code"].as_str(),
        Some(code),
        "{context}: code in {body}"
    );
    if status == 401 {
        assert_eq!(
            res.header("www-authenticate"),
            Some("Bearer"),
            "{context}: a 401 names its scheme"
        );
    }
    assert_security_headers(res, context);
    body
}

/// [`assert_problem`] with the exact `detail`.
pub fn assert_error(res: &Resp, status: u16, code: &str, detail: &str, context: &str) {
    let body = assert_problem(res, status, code, context);
    assert_eq!(body["detail"].as_str(), Some(detail), "{context}: detail");
}

/// Any client error with the contract's body: a 4xx (never a 5xx) whose JSON has string
/// `detail` and `code`. Returns the status and body.
pub fn assert_client_error(res: &Resp, context: &str) -> (u16, Value) {
    let status = res.status.as_u16();
    assert!(
        (400..500).contains(&status),
        "{context}: expected a 4xx, got {status}: {}",
        res.text()
    );
    let body = res.json();
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{context}: detail in {body}"
    );
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{context}: code in {body}"
    );
    assert_security_headers(res, context);
    (status, body)
}

/// Checks that `user` has exactly the `UserPublic` keys with the right types, and times
/// in RFC 3339 UTC.
pub fn assert_user_public(user: &Value) {
    let object = user.as_object().expect("a user is a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, USER_PUBLIC_KEYS, "UserPublic keys of {user}");
    assert!(user["id"].as_i64().is_some_and(|id| id > 0), "id of {user}");
    assert!(user["email"].is_string(), "email of {user}");
    assert!(user["is_admin"].is_boolean(), "is_admin of {user}");
    assert!(
        ["pending", "approved", "disabled", "rejected"]
            .contains(&user["status"].as_str().unwrap_or("")),
        "status of {user}"
    );
    assert!(
        user["email_verified"].is_boolean(),
        "email_verified of {user}"
    );
    assert!(user["mfa_enabled"].is_boolean(), "mfa_enabled of {user}");
    for text in ["reason", "decision_note"] {
        assert!(
            user[text].is_null() || user[text].is_string(),
            "{text} of {user}"
        );
    }
    let rejected = user["status"] == "rejected";
    if rejected {
        assert_utc_time(&user["rejected_at"]);
    } else {
        assert!(user["rejected_at"].is_null(), "rejected_at of {user}");
        assert!(user["rejected_by"].is_null(), "rejected_by of {user}");
    }
    assert!(
        user["rejected_by"].is_null() || user["rejected_by"].as_i64().is_some_and(|id| id > 0),
        "rejected_by of {user}"
    );
    assert_utc_time(&user["created_at"]);
    if !user["approved_at"].is_null() {
        assert_utc_time(&user["approved_at"]);
    }
    assert!(
        user["approved_by"].is_null() || user["approved_by"].as_i64().is_some_and(|id| id > 0),
        "approved_by of {user}"
    );
}

/// An RFC 3339 time in UTC (`…Z`).
pub fn assert_utc_time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a time"));
    assert!(text.ends_with('Z'), "{text} is not in UTC");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
}

/// The session id (`sid`) an access token of the test secret names.
pub fn session_id(token: &str) -> i64 {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET).expect("an HS256 key"),
        &validation,
    )
    .expect("an access token of ours")
    .claims["sid"]
        .as_i64()
        .expect("sid, a number")
}
