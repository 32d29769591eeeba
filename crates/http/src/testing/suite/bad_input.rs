//! Bad input of every shape gets a 4xx with the contract's JSON body, never a 5xx, and
//! changes nothing.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use actix_web::web::Bytes;
use serde_json::{json, Value};

use crate::testing::{
    assert_client_error, assert_error, assert_problem, bearer, spawn_app, NewStore, Resp, Session,
    TestApp, PASSWORD,
};

/// An admin, an approved user (bob) and a pending one (carol), with the state to compare
/// against after each bad request.
struct Fixture {
    app: TestApp,
    admin: Session,
    bob: Session,
    carol: i64,
    users: Vec<Value>,
}

impl Fixture {
    async fn new(new_store: &NewStore) -> Self {
        let app = spawn_app(new_store()).await;
        let admin = app.admin().await;
        let bob = app.approved_user(&admin, "bob@example.com").await;
        let carol = app.register_ok("carol@example.com").await;
        let users = app.users(&admin).await;
        Self {
            app,
            admin,
            bob,
            carol,
            users,
        }
    }

    /// Fails unless everything is as it was: the same users, and bob's password and token
    /// (which a password reset would change and revoke) still good.
    async fn assert_unchanged(&self, context: &str) {
        assert_eq!(
            self.app.users(&self.admin).await,
            self.users,
            "{context}: users changed"
        );
        let me = self.app.get("/api/auth/me", Some(&self.bob.token)).await;
        assert_eq!(
            me.status.as_u16(),
            200,
            "{context}: bob's token was revoked"
        );
        let login = self.app.login_form(&self.bob.email, PASSWORD).await;
        assert_eq!(
            login.status.as_u16(),
            200,
            "{context}: bob's password changed"
        );
    }

    /// Every endpoint that takes a JSON body: (name, method, path, token).
    fn json_endpoints(&self) -> Vec<(&'static str, Method, String, Option<String>)> {
        let admin = Some(self.admin.token.clone());
        vec![
            ("register", Method::POST, "/api/auth/register".into(), None),
            ("login", Method::POST, "/api/auth/login".into(), None),
            (
                "update",
                Method::PUT,
                format!("/api/auth/users/{}", self.bob.id),
                admin.clone(),
            ),
            (
                "reset",
                Method::POST,
                format!("/api/auth/users/{}/reset-password", self.bob.id),
                admin,
            ),
        ]
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut req = TestRequest::default()
            .method(method)
            .uri(path)
            .set_payload(body);
        if let Some(content_type) = content_type {
            req = req.insert_header(("Content-Type", content_type));
        }
        if let Some(token) = token {
            req = bearer(req, token);
        }
        self.app.send(req).await
    }

    async fn put(&self, id: i64, body: &Value) -> Resp {
        self.app
            .put_json(
                &format!("/api/auth/users/{id}"),
                Some(&self.admin.token),
                body,
            )
            .await
    }
}

/// A body each JSON endpoint accepts, given the right content type.
fn valid_body(endpoint: &str) -> &'static str {
    match endpoint {
        "register" => r#"{"email": "dan@example.com", "password": "correct horse battery"}"#,
        "login" => r#"{"email": "bob@example.com", "password": "correct horse battery"}"#,
        "update" => r#"{"status": "disabled"}"#,
        "reset" => r#"{"password": "a brand new password"}"#,
        other => panic!("no valid body for {other}"),
    }
}

fn field_names(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn malformed_and_non_object_json_is_refused(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    let cases: [(&str, &[u8], &str); 11] = [
        ("only an opening brace", b"{", "invalid_json"),
        (
            "unquoted key",
            br#"{email: "x@example.com"}"#,
            "invalid_json",
        ),
        ("single quotes", br"{'password':'12345678'}", "invalid_json"),
        ("empty", b"", "invalid_json"),
        ("whitespace only", b" \r\n\t ", "invalid_json"),
        ("array", b"[]", "validation_error"),
        (
            "array of an object",
            br#"[{"email":"dan@example.com","password":"12345678"}]"#,
            "validation_error",
        ),
        ("null", b"null", "validation_error"),
        ("string", br#""dan@example.com""#, "validation_error"),
        ("number", b"42", "validation_error"),
        ("boolean", b"true", "validation_error"),
    ];
    for (name, method, path, token) in f.json_endpoints() {
        for (what, body, code) in cases {
            let context = format!("{name}: {what}");
            let res = f
                .raw(
                    method.clone(),
                    &path,
                    token.as_deref(),
                    Some("application/json"),
                    body,
                )
                .await;
            assert_problem(&res, 422, code, &context);
        }
        // Around a body that is right for the endpoint, so only the framing is wrong.
        let valid = valid_body(name);
        // The first string value of the body, opened: `{"key": "` + what follows.
        let (opening, rest) = valid.split_at(valid.find(": \"").unwrap() + 3);
        let spliced = |inner: &[u8]| [opening.as_bytes(), inner, rest.as_bytes()].concat();
        let trailing_comma = format!("{},}}", valid.strip_suffix('}').unwrap());
        let derived: [(&str, Vec<u8>, &str); 8] = [
            ("truncated", opening.as_bytes().to_vec(), "invalid_json"),
            (
                "trailing comma",
                trailing_comma.into_bytes(),
                "invalid_json",
            ),
            (
                "trailing garbage",
                format!("{valid} x").into_bytes(),
                "invalid_json",
            ),
            (
                "two objects",
                format!("{valid}{valid}").into_bytes(),
                "invalid_json",
            ),
            ("invalid UTF-8", spliced(b"\xff\xfe"), "invalid_json"),
            ("lone surrogate", spliced(br"\ud800"), "invalid_json"),
            (
                "two objects in an array",
                format!("[{valid},{valid}]").into_bytes(),
                "validation_error",
            ),
            (
                "byte order mark",
                format!("\u{feff}{valid}").into_bytes(),
                "validation_error",
            ),
        ];
        for (what, body, code) in derived {
            let context = format!("{name}: {what}");
            let res = f
                .raw(
                    method.clone(),
                    &path,
                    token.as_deref(),
                    Some("application/json"),
                    body,
                )
                .await;
            assert_problem(&res, 422, code, &context);
        }
    }
    f.assert_unchanged("malformed JSON").await;
}

pub async fn fields_of_the_wrong_type_are_refused(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    let update = format!("/api/auth/users/{}", f.carol);
    let reset = format!("/api/auth/users/{}/reset-password", f.bob.id);
    let admin = Some(f.admin.token.as_str());
    let cases: Vec<(&str, &str, Option<&str>, Value, &str)> = vec![
        (
            "PUT",
            &update,
            admin,
            json!({"is_admin": "yes"}),
            "is_admin",
        ),
        ("PUT", &update, admin, json!({"is_admin": 1}), "is_admin"),
        (
            "PUT",
            &update,
            admin,
            json!({"is_admin": "true", "status": "approved"}),
            "is_admin",
        ),
        ("PUT", &update, admin, json!({"email": 5}), "email"),
        (
            "PUT",
            &update,
            admin,
            json!({"email": ["dan@example.com"]}),
            "email",
        ),
        ("PUT", &update, admin, json!({"status": 1}), "status"),
        ("PUT", &update, admin, json!({"status": true}), "status"),
        (
            "POST",
            "/api/auth/register",
            None,
            json!({"email": 5, "password": PASSWORD}),
            "email",
        ),
        (
            "POST",
            "/api/auth/register",
            None,
            json!({"email": "dan@example.com", "password": 12_345_678}),
            "password",
        ),
        (
            "POST",
            "/api/auth/register",
            None,
            json!({"email": "dan@example.com", "password": null}),
            "password",
        ),
        (
            "POST",
            "/api/auth/register",
            None,
            json!({"email": "dan@example.com"}),
            "password",
        ),
        (
            "POST",
            "/api/auth/register",
            None,
            json!({"password": PASSWORD}),
            "email",
        ),
        (
            "POST",
            &reset,
            admin,
            json!({"password": 12_345_678}),
            "password",
        ),
        ("POST", &reset, admin, json!({}), "password"),
        (
            "POST",
            "/api/auth/login",
            None,
            json!({"email": 5, "password": PASSWORD}),
            "email",
        ),
        (
            "POST",
            "/api/auth/login",
            None,
            json!({"email": "bob@example.com"}),
            "password",
        ),
    ];
    for (method, path, token, body, field) in cases {
        let context = format!("{method} {path} {body}");
        let res = f
            .raw(
                Method::from_bytes(method.as_bytes()).unwrap(),
                path,
                token,
                Some("application/json"),
                body.to_string(),
            )
            .await;
        let problem = assert_problem(&res, 422, "validation_error", &context);
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{context}: the detail names {field}: {problem}"
        );
        assert_eq!(field_names(&problem), [field], "{context}");
    }
    // A number too large for any type is still a client's mistake.
    let res = f
        .raw(
            Method::PUT,
            &update,
            admin,
            Some("application/json"),
            r#"{"is_admin": 1e999}"#,
        )
        .await;
    assert_eq!(assert_client_error(&res, "1e999").0, 422);
    f.assert_unchanged("wrong types").await;
}

pub async fn unknown_and_repeated_fields_are_refused_not_ignored(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    let update = format!("/api/auth/users/{}", f.carol);
    let reset = format!("/api/auth/users/{}/reset-password", f.bob.id);
    let admin = Some(f.admin.token.as_str());
    let cases: Vec<(&str, Option<&str>, &str, &str)> = vec![
        (&update, admin, r#"{"isAdmin": true}"#, "isAdmin"),
        (
            &update,
            admin,
            r#"{"is_admin": true, "role": "admin"}"#,
            "role",
        ),
        (&update, admin, r#"{"Status": "approved"}"#, "Status"),
        (
            &update,
            admin,
            r#"{"password": "a brand new password"}"#,
            "password",
        ),
        (&update, admin, r#"{"id": 1}"#, "id"),
        (
            &update,
            admin,
            r#"{"is_admin": false, "is_admin": true}"#,
            "is_admin",
        ),
        (
            "/api/auth/register",
            None,
            r#"{"email": "dan@example.com", "password": "correct horse battery", "is_admin": true}"#,
            "is_admin",
        ),
        (
            "/api/auth/register",
            None,
            r#"{"email": "dan@example.com", "password": "correct horse battery", "status": "approved"}"#,
            "status",
        ),
        (
            "/api/auth/register",
            None,
            r#"{"email": "dan@example.com", "email": "eve@example.com", "password": "correct horse battery"}"#,
            "email",
        ),
        (
            &reset,
            admin,
            r#"{"password": "a brand new password", "user_id": 1}"#,
            "user_id",
        ),
        (
            "/api/auth/login",
            None,
            r#"{"email": "bob@example.com", "password": "correct horse battery", "remember": true}"#,
            "remember",
        ),
        (
            "/api/auth/login",
            None,
            r#"{"user": "bob@example.com", "password": "correct horse battery"}"#,
            "user",
        ),
    ];
    for (path, token, body, field) in cases {
        let method = if path == update {
            Method::PUT
        } else {
            Method::POST
        };
        let context = format!("{path} {body}");
        let res = f
            .raw(method, path, token, Some("application/json"), body)
            .await;
        let problem = assert_problem(&res, 422, "validation_error", &context);
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{context}: the detail names {field}: {problem}"
        );
    }
    // Forms are as strict.
    for form in [
        "username=bob%40example.com&password=correct+horse+battery&remember=1",
        "username=bob%40example.com&password=correct+horse+battery&password=other",
        "username=bob%40example.com",
        "username=bob%40example.com&password=correct+horse+battery&grant_type=client_credentials",
    ] {
        let res = f
            .raw(
                Method::POST,
                "/api/auth/login",
                None,
                Some("application/x-www-form-urlencoded"),
                form,
            )
            .await;
        assert_problem(&res, 422, "validation_error", form);
    }
    f.assert_unchanged("unknown fields").await;
}

pub async fn ids_that_are_not_positive_64_bit_integers_are_refused(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    for id in [
        "abc",
        "-1",
        "0",
        "00",
        "99999999999999999999",
        "9223372036854775808",
        "1.5",
        "1e3",
        "0x10",
        "+1",
        "%201",
        "1%20",
        "%F0%9F%98%80",
        "%D9%A1",
        "1;DROP%20TABLE%20users",
        "null",
    ] {
        let token = Some(f.admin.token.as_str());
        let put = f
            .raw(
                Method::PUT,
                &format!("/api/auth/users/{id}"),
                token,
                Some("application/json"),
                r#"{"status": "disabled"}"#,
            )
            .await;
        let problem = assert_problem(&put, 422, "validation_error", &format!("PUT {id}"));
        assert_eq!(field_names(&problem), ["id"], "PUT {id}");
        let delete = f
            .raw(
                Method::DELETE,
                &format!("/api/auth/users/{id}"),
                token,
                None,
                "",
            )
            .await;
        assert_problem(&delete, 422, "validation_error", &format!("DELETE {id}"));
        let reset = f
            .raw(
                Method::POST,
                &format!("/api/auth/users/{id}/reset-password"),
                token,
                Some("application/json"),
                r#"{"password": "a brand new password"}"#,
            )
            .await;
        assert_problem(&reset, 422, "validation_error", &format!("reset {id}"));
    }
    f.assert_unchanged("bad ids").await;
}

pub async fn bodies_over_16_kib_are_refused_with_413(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    let mib = {
        // A well-formed body, so that only its size is wrong.
        let padding = "a".repeat(1024 * 1024);
        json!({"email": "dan@example.com", "password": padding}).to_string()
    };
    let just_over = format!(
        r#"{{"email": "dan@example.com", "password": "correct horse battery"}}{}"#,
        " ".repeat(16 * 1024)
    );
    for (name, method, path, token) in f.json_endpoints() {
        for (what, body) in [("1 MiB", &mib), ("just over 16 KiB", &just_over)] {
            let res = f
                .raw(
                    method.clone(),
                    &path,
                    token.as_deref(),
                    Some("application/json"),
                    body.clone(),
                )
                .await;
            assert_problem(&res, 413, "payload_too_large", &format!("{name}: {what}"));
        }
    }
    let form = format!(
        "username=bob%40example.com&password={}",
        "a".repeat(1024 * 1024)
    );
    let res = f
        .raw(
            Method::POST,
            "/api/auth/login",
            None,
            Some("application/x-www-form-urlencoded"),
            form,
        )
        .await;
    assert_problem(&res, 413, "payload_too_large", "form login");
    f.assert_unchanged("huge bodies").await;

    // Just under the limit is fine: the limit is on bytes, not on what they say.
    let padded = format!(
        r#"{{"email": "dan@example.com", "password": "correct horse battery"}}{}"#,
        " ".repeat(16 * 1024 - 100)
    );
    let res = f
        .raw(
            Method::POST,
            "/api/auth/register",
            None,
            Some("application/json"),
            padded,
        )
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.text());
}

pub async fn bodies_without_a_json_content_type_are_refused_with_415(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    for (name, method, path, token) in f.json_endpoints() {
        let body = valid_body(name);
        for content_type in [
            Some("text/plain"),
            Some("text/plain; charset=utf-8"),
            Some("application/xml"),
            Some("text/json"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            None,
        ] {
            let context = format!("{name} as {content_type:?}");
            let res = f
                .raw(method.clone(), &path, token.as_deref(), content_type, body)
                .await;
            assert_problem(&res, 415, "unsupported_media_type", &context);
        }
        if name != "login" {
            // Only login also takes a form.
            let res = f
                .raw(
                    method.clone(),
                    &path,
                    token.as_deref(),
                    Some("application/x-www-form-urlencoded"),
                    "status=disabled&password=a+brand+new+password",
                )
                .await;
            assert_problem(
                &res,
                415,
                "unsupported_media_type",
                &format!("{name} as a form"),
            );
        }
        // No body and no content type at all.
        let res = f
            .raw(method.clone(), &path, token.as_deref(), None, "")
            .await;
        let (status, _) = assert_client_error(&res, &format!("{name} with nothing"));
        assert_eq!(status, 415, "{name} with nothing");
    }
    f.assert_unchanged("wrong content types").await;

    // Parameters and case in the media type do not matter.
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let res = f
            .raw(
                Method::POST,
                "/api/auth/login",
                None,
                Some(content_type),
                r#"{"email": "bob@example.com", "password": "correct horse battery"}"#,
            )
            .await;
        assert_eq!(res.status.as_u16(), 200, "{content_type}: {}", res.text());
    }
}

pub async fn implausible_and_odd_unicode_emails_are_refused(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    for email in [
        "dan\u{200b}@example.com",
        "\u{202e}dan@example.com",
        "dan@example.com\u{202e}",
        "dan@exa\u{202e}mple.com",
        "dan\u{200d}@example.com",
        "dan\u{feff}@example.com",
        "dan\u{0000}@example.com",
        "dan\u{0007}@example.com",
        "dan\u{00ad}@example.com",
        "dan @example.com",
        "dan@example.com\u{0000}",
        "",
        "   ",
        "dan",
        "dan@",
        "@example.com",
        "dan@localhost",
        "dan@@example.com",
        "dan@example..com",
        "\"dan\"@example.com",
        "dan@example.com, eve@example.com",
        "dan@example.com\r\nBcc: eve@example.com",
    ] {
        let context = format!("register {email:?}");
        let res = f.app.register(email, PASSWORD).await;
        let problem = assert_problem(&res, 422, "validation_error", &context);
        assert_eq!(field_names(&problem), ["email"], "{context}");

        let res = f.put(f.carol, &json!({"email": email})).await;
        assert_problem(&res, 422, "validation_error", &format!("PUT {email:?}"));
    }
    let overlong = format!("{}@example.com", "a".repeat(65));
    let res = f.app.register(&overlong, PASSWORD).await;
    assert_problem(&res, 422, "validation_error", "a 65-character local part");
    f.assert_unchanged("odd emails").await;
}

pub async fn several_bad_fields_are_reported_together(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;

    let res = f.app.register("not an email", "short").await;

    let problem = assert_problem(&res, 422, "validation_error", "both bad");
    let mut fields = field_names(&problem);
    fields.sort();
    assert_eq!(fields, ["email", "password"]);
    let res = f
        .put(f.carol, &json!({"email": "nope", "status": "active"}))
        .await;
    let problem = assert_problem(&res, 422, "validation_error", "both bad");
    let mut fields = field_names(&problem);
    fields.sort();
    assert_eq!(fields, ["email", "status"]);
    f.assert_unchanged("several bad fields").await;
}

pub async fn statuses_are_exact_words(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    for status in [
        "Approved",
        "APPROVED",
        " approved",
        "active",
        "enabled",
        "",
        "deleted",
    ] {
        let res = f.put(f.carol, &json!({"status": status})).await;
        let problem = assert_problem(&res, 422, "validation_error", status);
        assert_eq!(field_names(&problem), ["status"], "{status:?}");
    }
    f.assert_unchanged("bad statuses").await;
}

/// `count` copies of `unit`: `count * unit.len()` bytes, `count` characters.
fn password_of(unit: &str, count: usize) -> String {
    unit.repeat(count)
}

pub async fn passwords_are_8_to_72_bytes_counted_in_bytes(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    let refused = [
        password_of("x", 7),
        password_of("x", 73),
        password_of("x", 200),
        password_of("é", 3),            // 6 bytes
        password_of("€", 25),           // 75 bytes, 25 characters
        password_of("😀", 19),          // 76 bytes, 19 characters
        format!("{}é", "x".repeat(71)), // 73 bytes, 72 characters
        String::new(),
    ];
    for (i, password) in refused.iter().enumerate() {
        let context = format!(
            "{} bytes, {} chars",
            password.len(),
            password.chars().count()
        );
        let res = f.app.register(&format!("r{i}@example.com"), password).await;
        let problem = assert_problem(&res, 422, "validation_error", &context);
        assert_eq!(field_names(&problem), ["password"], "{context}");
        let res = f
            .app
            .post_json(
                &format!("/api/auth/users/{}/reset-password", f.bob.id),
                Some(&f.admin.token),
                &json!({ "password": password }),
            )
            .await;
        assert_problem(
            &res,
            422,
            "validation_error",
            &format!("reset to {context}"),
        );
    }
    f.assert_unchanged("refused passwords").await;

    let accepted = [
        password_of("x", 8),
        password_of("x", 72),
        password_of("é", 4),            // 8 bytes, 4 characters
        password_of("😀", 2),           // 8 bytes, 2 characters
        password_of("€", 24),           // 72 bytes, 24 characters
        format!("{}é", "x".repeat(70)), // 72 bytes
    ];
    for (i, password) in accepted.iter().enumerate() {
        let context = format!(
            "{} bytes, {} chars",
            password.len(),
            password.chars().count()
        );
        let email = format!("a{i}@example.com");
        let res = f.app.register(&email, password).await;
        assert_eq!(res.status.as_u16(), 201, "{context}: {}", res.text());
        let id = res.json()["id"].as_i64().unwrap();
        f.app
            .update_ok(&f.admin, id, &json!({"status": "approved"}))
            .await;
        // Stored whole: the exact password logs in, and nothing else does.
        assert!(!f.app.token(&email, password).await.is_empty(), "{context}");
        let longer = format!("{password}x");
        let res = f.app.login_form(&email, &longer).await;
        assert_eq!(res.status.as_u16(), 401, "{context}: one byte more");
        let shorter: String = {
            let mut chars = password.chars();
            chars.next_back();
            chars.collect()
        };
        let res = f.app.login_json(&email, &shorter).await;
        assert_eq!(res.status.as_u16(), 401, "{context}: one character less");
    }

    // A reset takes the same bounds.
    let res = f
        .app
        .post_json(
            &format!("/api/auth/users/{}/reset-password", f.bob.id),
            Some(&f.admin.token),
            &json!({ "password": password_of("€", 24) }),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    f.app.token("bob@example.com", &password_of("€", 24)).await;
}

pub async fn bad_list_query_parameters_are_refused(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    for (query, field) in [
        ("foo=1", "foo"),
        ("Limit=1", "Limit"),
        ("page=2", "page"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("limit=%201", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("status=bogus", "status"),
        ("status=Approved", "status"),
        ("status=", "status"),
        ("is_admin=1", "is_admin"),
        ("is_admin=True", "is_admin"),
        ("is_admin=", "is_admin"),
        ("isAdmin=true", "isAdmin"),
        ("limit=1&limit=2", "limit"),
    ] {
        let res = f
            .app
            .get(&format!("/api/auth/users?{query}"), Some(&f.admin.token))
            .await;
        let problem = assert_problem(&res, 422, "validation_error", query);
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{query}: the detail names {field}: {problem}"
        );
    }
    f.assert_unchanged("bad queries").await;
}

pub async fn unknown_routes_are_json_404s(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/console"),
        (Method::GET, "/console/nope.js"),
        (Method::GET, "/api"),
        (Method::GET, "/api/auth"),
        (Method::GET, "/api/auth/"),
        (Method::GET, "/api/auth/nope"),
        (Method::POST, "/api/auth/nope"),
        (Method::GET, "/api/auth/users/"),
        (Method::GET, "/api/auth/users/1/nope"),
        (Method::POST, "/api/auth/register/"),
        (Method::GET, "/api/auth/ME"),
        (Method::GET, "/API/auth/me"),
        (Method::DELETE, "/api/auth/users/1/2"),
        (Method::GET, "/healthz/"),
        (Method::GET, "/docs/"),
        (Method::GET, "/docs/assets/nope.js"),
        (Method::GET, "/openapi.json"),
    ] {
        let context = format!("{method} {path}");
        let res = f
            .raw(
                method,
                path,
                Some(&f.admin.token),
                Some("application/json"),
                "{}",
            )
            .await;
        assert_error(&res, 404, "not_found", "Not found", &context);
    }
    f.assert_unchanged("unknown routes").await;
}

pub async fn wrong_methods_are_json_405s_with_allow(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    let bob = f.bob.id;
    for (method, path, allow) in [
        (Method::GET, "/api/auth/register".to_owned(), "POST"),
        (Method::PUT, "/api/auth/register".to_owned(), "POST"),
        (Method::GET, "/api/auth/login".to_owned(), "POST"),
        (Method::POST, "/api/auth/me".to_owned(), "GET"),
        (Method::DELETE, "/api/auth/me".to_owned(), "GET"),
        (Method::PUT, "/api/auth/users".to_owned(), "GET, POST"),
        (Method::DELETE, "/api/auth/users".to_owned(), "GET, POST"),
        (
            Method::POST,
            "/api/auth/users/pending/count".to_owned(),
            "GET",
        ),
        (Method::GET, format!("/api/auth/users/{bob}"), "PUT, DELETE"),
        (
            Method::POST,
            format!("/api/auth/users/{bob}"),
            "PUT, DELETE",
        ),
        (
            Method::PATCH,
            format!("/api/auth/users/{bob}"),
            "PUT, DELETE",
        ),
        (
            Method::GET,
            format!("/api/auth/users/{bob}/reset-password"),
            "POST",
        ),
        (
            Method::PUT,
            format!("/api/auth/users/{bob}/reset-password"),
            "POST",
        ),
        (Method::POST, "/healthz".to_owned(), "GET"),
        (Method::DELETE, "/readyz".to_owned(), "GET"),
    ] {
        let context = format!("{method} {path}");
        let res = f
            .raw(
                method,
                &path,
                Some(&f.admin.token),
                Some("application/json"),
                r#"{"status": "disabled", "password": "a brand new password"}"#,
            )
            .await;
        assert_error(
            &res,
            405,
            "method_not_allowed",
            "Method not allowed",
            &context,
        );
        let mut allowed: Vec<&str> = res
            .header("allow")
            .unwrap_or_else(|| panic!("{context}: an Allow header"))
            .split(',')
            .map(str::trim)
            .collect();
        allowed.sort_unstable();
        let mut expected: Vec<&str> = allow.split(", ").collect();
        expected.sort_unstable();
        assert_eq!(allowed, expected, "{context}: Allow");
    }
    f.assert_unchanged("wrong methods").await;
}

pub async fn refusals_come_before_a_bad_body_is_looked_at(new_store: &NewStore) {
    let f = Fixture::new(new_store).await;
    // Without a token, an admin route says 401 whatever the body; with a non-admin's, 403.
    let path = format!("/api/auth/users/{}", f.carol);
    let res = f
        .raw(Method::PUT, &path, None, Some("text/plain"), "garbage")
        .await;
    assert_problem(&res, 401, "not_authenticated", "no token, bad body");
    let res = f
        .raw(
            Method::PUT,
            &path,
            Some(&f.bob.token),
            Some("application/json"),
            r#"{"isAdmin": true}"#,
        )
        .await;
    assert_problem(&res, 403, "admin_required", "non-admin, bad body");
    f.assert_unchanged("refusals first").await;
}

pub async fn nul_bytes_in_names_and_searches_are_just_wrong_not_errors(new_store: &NewStore) {
    // PostgreSQL cannot hold a NUL in text: these once reached it and answered 500.
    let f = Fixture::new(new_store).await;
    for email in ["a\u{0}@example.com", "\u{0}"] {
        let res = f.app.login_json(email, PASSWORD).await;
        assert_error(
            &res,
            401,
            "invalid_credentials",
            "Incorrect email or password",
            "NUL in a JSON login",
        );
    }
    let res = f
        .app
        .send(
            TestRequest::post()
                .uri("/api/auth/login")
                .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                .set_payload("username=a%00b&password=whatever1"),
        )
        .await;
    assert_eq!(res.status.as_u16(), 401, "{}", res.text());
    let res = f
        .app
        .get("/api/auth/users?q=%00", Some(&f.admin.token))
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_eq!(res.json(), json!([]));
    assert_eq!(res.header("X-Total-Count"), Some("0"));
    f.assert_unchanged("NUL bytes").await;
}
