//! The handlers: extract, parse into domain types, run the use case off the async
//! workers, map the result to a response. No rule and no SQL lives here.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_domain::{
    Actor, AuditAction, AuditEntry, AuditQuery, Email, FreeText, InvalidEmail, InvalidPassword,
    Listing, NewUserRequest, Origin, Password, User, UserChanges, UserId, UserQuery, UserStatus,
};

use crate::dto::{
    AuditEntryPublic, ChangePasswordRequest, CountResponse, CreateUserRequest, ListAuditParams,
    ListUsersParams, LoginForm, LoginJson, MessageResponse, RegisterRequest, ResetPasswordRequest,
    StatusResponse, TokenResponse, UpdateUserRequest, UserPublic,
};
use crate::error::{ApiError, FieldError};
use crate::extract::{
    is_form, is_json, parse_form, parse_json, AdminUser, CurrentUser, StrictJson, StrictQuery,
};
use crate::schemas::{
    AdminErrors, BodyErrors, EmailTaken, Forbidden, InvalidInvitation, JwkSet, LastAdmin,
    LoginJsonSchema, RegistrationRefused, SignedInErrors, TooManyRequests, Unauthorized,
    Unavailable, UserIdErrors, UserIdSchema, ValidationFailed,
};
use crate::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// The header a login may carry its device token in (instead of the `device_token` field).
pub const DEVICE_HEADER: &str = "Gatehouse-Device";

/// Collects the problems of several fields so one response names them all.
#[derive(Default)]
pub(crate) struct Problems {
    errors: Vec<FieldError>,
    weak_password: bool,
    mixed_script_email: bool,
}

impl Problems {
    pub(crate) fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        parsed: std::result::Result<T, E>,
    ) -> Option<T> {
        parsed
            .map_err(|e| self.errors.push(FieldError::new(field, e.to_string())))
            .ok()
    }

    /// A free text (a reason, a note): `None` when absent, `null` or blank, and when it
    /// fails (reported on `field`).
    pub(crate) fn free_text(&mut self, field: &str, raw: Option<&str>) -> Option<FreeText> {
        raw.and_then(|raw| self.check(field, FreeText::parse(raw)).flatten())
    }

    /// A new password: a common one is reported with the code `weak_password`.
    pub(crate) fn password(&mut self, field: &str, raw: String) -> Option<Password> {
        let parsed = Password::parse(raw);
        self.weak_password |= parsed.as_ref().is_err_and(InvalidPassword::is_weak);
        self.check(field, parsed)
    }

    /// An email: one refused for mixing scripts (a look-alike) is reported with the code
    /// `invalid_email`.
    pub(crate) fn email(&mut self, field: &str, raw: &str) -> Option<Email> {
        let parsed = Email::parse(raw);
        self.mixed_script_email |= parsed.as_ref().is_err_and(InvalidEmail::mixes_scripts);
        self.check(field, parsed)
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let error = ApiError::validation(self.errors);
        Err(if self.mixed_script_email {
            error.with_code("invalid_email")
        } else if self.weak_password {
            error.with_code("weak_password")
        } else {
            error
        })
    }
}

pub(crate) fn user_id(field: &str, raw: &str) -> Result<UserId> {
    raw.parse()
        .map_err(|e: gatehouse_domain::InvalidUserId| ApiError::invalid(field, e.to_string()))
}

pub(crate) fn origin(state: &AppState, req: &HttpRequest) -> Origin {
    Origin {
        address: state.proxies.of(req),
        note: None,
        user_agent: None,
    }
    .with_user_agent(
        req.headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    )
}

fn missing(fields: &str) -> ApiError {
    ApiError::invalid("body", format!("{fields} required"))
}

#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "auth",
    summary = "Register an account",
    description = "The first user ever becomes an approved admin (in every registration \
        mode), every later one a pending non-admin, unless they bring an invitation: then \
        approved by its creator (an admin if it says so). `GATEHOUSE_REGISTRATION` may \
        refuse registrations without an invitation (`invite_only`) or all of them \
        (`closed`): 403 `registration_closed`. 422 names every invalid field at once. \
        Counted against the client address's hourly registration limit (429).",
    request_body(content = RegisterRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new user", body = UserPublic,
            links(
                ("UpdateUser" = (operation_id = "update_user",
                    parameters(("id" = "$response.body#/id")))),
                ("DeleteUser" = (operation_id = "delete_user",
                    parameters(("id" = "$response.body#/id")))),
                ("ResetPassword" = (operation_id = "reset_password",
                    parameters(("id" = "$response.body#/id")))),
            )),
        (status = 403, response = RegistrationRefused),
        (status = 409, response = EmailTaken),
        (status = 422, response = InvalidInvitation),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<RegisterRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let email = problems.email("email", &request.email);
    let password = problems.password("password", request.password);
    let reason = problems.free_text("reason", request.reason.as_deref());
    problems.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(missing("email and password are"));
    };
    let origin = origin(&state, &req);
    // A mode that refuses this registration does so first, before any hashing (checked
    // again in the registration's transaction): `closed` refuses a code, good or bad.
    let with_invitation = request.invitation.is_some();
    if !state.users.registration_may_be_open(with_invitation) {
        let users = state.users.clone();
        state
            .blocking(move || users.ensure_registration_open(with_invitation))
            .await?;
    }
    let invitation = request
        .invitation
        .as_deref()
        .map(crate::approval::presented_code)
        .transpose()?;
    // In a flood the hashing queue is full: refuse before counting anything. Then the
    // database work in database slots and only the hash on a hashing thread; a code that
    // admits nobody is refused before the hash too.
    if !state.hashing.has_room() {
        return Err(ApiError::overloaded());
    }
    let (users, at) = (state.users.clone(), origin.clone());
    let (code, address) = (invitation.clone(), email.clone());
    state
        .blocking(move || users.begin_register_invited(&at, code.as_ref().map(|c| (c, &address))))
        .await?;
    let ticket = state.hashing.reserve()?;
    let users = state.users.clone();
    let hash = ticket.run(move || users.hash_password(&password)).await??;
    let users = state.users.clone();
    let user = state
        .blocking(move || {
            users.finish_register_invited(
                email,
                &hash,
                invitation.as_ref(),
                reason.as_ref(),
                &origin,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(UserPublic::from(&user)))
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    summary = "Log in: start a session",
    description = "Starts a session and answers its tokens: a short-lived access token \
        and a single-use refresh token (`POST /api/auth/token`). An unknown email and a \
        wrong password get the same 401. A pending, disabled or rejected account gets its \
        403 only after the password was verified. Failed logins are throttled per account \
        and per client address (429).",
    request_body(
        description = "The OAuth2 password form, or JSON",
        content(
            (LoginForm = "application/x-www-form-urlencoded"),
            (LoginJsonSchema = "application/json"),
        )
    ),
    responses(
        (status = 200, description = "A new session's tokens, or (the account has TOTP on) \
            `mfa_required` with the `mfa_token` of the second step", body = crate::mfa::LoginResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
        BodyErrors,
    )
)]
pub(crate) async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let (email, password, device) = if is_form(&req) {
        let form: LoginForm = parse_form(&body)?;
        if form.grant_type.as_deref().is_some_and(|g| g != "password") {
            return Err(ApiError::invalid("grant_type", "must be \"password\""));
        }
        (form.username, form.password, form.device_token)
    } else if is_json(&req) {
        let json: LoginJson = parse_json(&body)?;
        (json.email, json.password, json.device_token)
    } else {
        return Err(ApiError::unsupported_media_type(
            "application/x-www-form-urlencoded or application/json",
        ));
    };
    let device = device.or_else(|| {
        req.headers()
            .get(DEVICE_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    });
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let outcome = async {
        // Count the attempt first: a throttled one never waits for a hashing thread. A
        // login refused as overloaded counts as no failure: refused before counting when
        // the hashing queue is full already, and its guess given back when it filled up
        // meanwhile.
        if !state.hashing.has_room() {
            return Err(ApiError::overloaded());
        }
        let attempt = state
            .blocking(move || users.begin_login(&email, device.as_deref(), &origin))
            .await?;
        let ticket = match state.hashing.reserve() {
            Ok(ticket) => ticket,
            Err(overloaded) => {
                let (users, attempt) = (state.users.clone(), attempt.clone());
                state.blocking(move || users.cancel_login(&attempt)).await?;
                return Err(overloaded);
            }
        };
        let users = state.users.clone();
        let (attempt, verified) = ticket
            .run(move || {
                let verified = users.check_login_password(&attempt, &password);
                (attempt, verified)
            })
            .await?;
        let verified = verified?;
        let users = state.users.clone();
        state
            .blocking(move || users.finish_login(attempt, verified))
            .await
    }
    .await;
    match &outcome {
        Ok(gatehouse_domain::LoginStep::MfaRequired(_)) => {
            state.metrics.login_outcome("mfa_required");
        }
        _ => state.metrics.login(&outcome),
    }
    Ok(HttpResponse::Ok().json(crate::mfa::LoginResponse::from(outcome?)))
}

#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    summary = "The signed-in user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller, loaded fresh", body = UserPublic),
        SignedInErrors,
    )
)]
pub(crate) async fn me(CurrentUser(session): CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(UserPublic::from(&session.user))
}

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    summary = "End the current session",
    description = "Ends the session of the presented token: its refresh token and every \
        access token of it stop working at once. The user's other sessions go on.",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended; no body"),
        SignedInErrors,
    )
)]
pub(crate) async fn logout(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.logout(&session, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    put,
    path = "/api/auth/me/password",
    tag = "auth",
    summary = "Change the signed-in user's password",
    description = "Every other session of the user ends, and every access token issued \
        before stops working; the current session goes on with the fresh pair in the answer \
        (its old refresh token stops working). A wrong current password is 403 \
        `invalid_password` and counts as a failed login (429 while the account is locked).",
    security(("bearer" = [])),
    request_body(content = ChangePasswordRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A fresh pair for the current session", body = TokenResponse),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        SignedInErrors,
        BodyErrors,
    )
)]
pub(crate) async fn change_password(
    CurrentUser(session): CurrentUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<ChangePasswordRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let new = problems.password("new_password", request.new_password);
    problems.finish()?;
    let Some(new) = new else {
        return Err(missing("new_password is"));
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let current = request.current_password;
    if !state.hashing.has_room() {
        return Err(ApiError::overloaded());
    }
    let change = state
        .blocking(move || users.begin_password_change(&session, &origin))
        .await?;
    let ticket = match state.hashing.reserve() {
        Ok(ticket) => ticket,
        Err(overloaded) => {
            let (users, change) = (state.users.clone(), change.clone());
            state
                .blocking(move || users.cancel_password_change(&change))
                .await?;
            return Err(overloaded);
        }
    };
    let users = state.users.clone();
    let (change, new_hash) = ticket
        .run(move || {
            let new_hash = users.check_password_change(&change, &current, &new);
            (change, new_hash)
        })
        .await?;
    let new_hash = new_hash?;
    let users = state.users.clone();
    let token = state
        .blocking(move || users.finish_password_change(change, new_hash.as_ref()))
        .await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(token)))
}

/// Parses an optional non-negative integer query parameter.
pub(crate) fn number(problems: &mut Problems, field: &str, raw: Option<String>) -> Option<u64> {
    problems
        .check(
            field,
            raw.map(|r| r.parse::<u64>())
                .transpose()
                .map_err(|_| "must be a non-negative integer"),
        )
        .flatten()
}

fn list_query(params: ListUsersParams) -> Result<UserQuery> {
    let mut problems = Problems::default();
    let limit = number(&mut problems, "limit", params.limit);
    let offset = number(&mut problems, "offset", params.offset);
    let status = problems.check(
        "status",
        params.status.map(|s| s.parse::<UserStatus>()).transpose(),
    );
    let is_admin = problems.check(
        "is_admin",
        params
            .is_admin
            .map(|a| match a.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err("must be true or false"),
            })
            .transpose(),
    );
    problems.finish()?;
    Ok(UserQuery {
        limit,
        offset: offset.unwrap_or(0),
        status: status.flatten(),
        is_admin: is_admin.flatten(),
        email_contains: params.q.filter(|q| !q.is_empty()),
    })
}

#[utoipa::path(
    get,
    path = "/api/auth/users",
    tag = "admin",
    summary = "List users, newest first",
    description = "Any other query parameter, or one given twice, is 422.",
    security(("bearer" = [])),
    params(ListUsersParams),
    responses(
        (status = 200, description = "A page of users", body = Vec<UserPublic>,
            headers(("X-Total-Count" = u64,
                description = "How many users match the filters, before paging"))),
        (status = 422, response = ValidationFailed),
        AdminErrors,
    )
)]
pub(crate) async fn list_users(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    query: StrictQuery<ListUsersParams>,
) -> Result<HttpResponse> {
    let query = list_query(query.into_inner()?)?;
    let users = state.users.clone();
    state
        .stream_listing(UserPublic::write, move |into: &mut dyn Listing<User>| {
            users.each_user(Actor::User(admin.id), &query, into)
        })
        .await
}

fn audit_query(params: ListAuditParams) -> Result<AuditQuery> {
    let mut problems = Problems::default();
    let limit = number(&mut problems, "limit", params.limit);
    let offset = number(&mut problems, "offset", params.offset);
    let action = problems.check(
        "action",
        params.action.map(|a| a.parse::<AuditAction>()).transpose(),
    );
    let actor = problems.check(
        "actor_id",
        params.actor_id.map(|a| a.parse::<UserId>()).transpose(),
    );
    let target = problems.check(
        "target_id",
        params.target_id.map(|t| t.parse::<UserId>()).transpose(),
    );
    problems.finish()?;
    Ok(AuditQuery {
        action: action.flatten(),
        actor_id: actor.flatten(),
        target_id: target.flatten(),
        limit,
        offset: offset.unwrap_or(0),
    })
}

#[utoipa::path(
    get,
    path = "/api/auth/audit",
    tag = "admin",
    summary = "The audit log, newest first",
    description = "Any other query parameter, or one given twice, is 422.",
    security(("bearer" = [])),
    params(ListAuditParams),
    responses(
        (status = 200, description = "A page of entries", body = Vec<AuditEntryPublic>,
            headers(("X-Total-Count" = u64,
                description = "How many entries match the filters, before paging"))),
        (status = 422, response = ValidationFailed),
        AdminErrors,
    )
)]
pub(crate) async fn list_audit(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    query: StrictQuery<ListAuditParams>,
) -> Result<HttpResponse> {
    let query = audit_query(query.into_inner()?)?;
    let users = state.users.clone();
    state
        .stream_listing(
            AuditEntryPublic::write,
            move |into: &mut dyn Listing<AuditEntry>| {
                users.each_audit_entry(Actor::User(admin.id), &query, into)
            },
        )
        .await
}

#[utoipa::path(
    get,
    path = "/api/auth/users/pending/count",
    tag = "admin",
    summary = "How many users wait for approval",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The number of pending users", body = CountResponse),
        AdminErrors,
    )
)]
pub(crate) async fn pending_count(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let users = state.users.clone();
    let count = state
        .blocking(move || users.pending_count(Actor::User(admin.id)))
        .await?;
    Ok(HttpResponse::Ok().json(CountResponse { count }))
}

#[utoipa::path(
    post,
    path = "/api/auth/users",
    tag = "admin",
    summary = "Create a user",
    description = "Approved and a non-admin unless asked otherwise.",
    security(("bearer" = [])),
    request_body(content = CreateUserRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new user", body = UserPublic,
            links(
                ("UpdateUser" = (operation_id = "update_user",
                    parameters(("id" = "$response.body#/id")))),
                ("DeleteUser" = (operation_id = "delete_user",
                    parameters(("id" = "$response.body#/id")))),
                ("ResetPassword" = (operation_id = "reset_password",
                    parameters(("id" = "$response.body#/id")))),
            )),
        (status = 409, response = EmailTaken),
        AdminErrors,
        BodyErrors,
    )
)]
pub(crate) async fn create_user(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: StrictJson<CreateUserRequest>,
) -> Result<HttpResponse> {
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let email = problems.email("email", &request.email);
    let password = problems.password("password", request.password);
    let status = problems.check(
        "status",
        request.status.map(|s| s.parse::<UserStatus>()).transpose(),
    );
    problems.finish()?;
    let (Some(email), Some(password), Some(status)) = (email, password, status) else {
        return Err(missing("email and password are"));
    };
    let request = NewUserRequest {
        email,
        password,
        is_admin: request.is_admin.unwrap_or(false),
        status: status.unwrap_or(UserStatus::Approved),
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let password = request.password.clone();
    let hash = state
        .hashing
        .run(move || users.hash_password(&password))
        .await??;
    let users = state.users.clone();
    let user = state
        .blocking(move || users.create_user_hashed(Actor::User(admin.id), &request, &hash, &origin))
        .await?;
    Ok(HttpResponse::Created().json(UserPublic::from(&user)))
}

#[utoipa::path(
    put,
    path = "/api/auth/users/{id}",
    tag = "admin",
    summary = "Change a user's email, admin flag or status",
    description = "`{}` changes nothing and returns the user. A change that would leave no \
        active admin is 400 `last_admin`, whoever asks. `note` goes only beside a `status` \
        of `approved` or `rejected` (the decision's note, which a rejected user is shown \
        at login).",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The user's id"),
    ),
    request_body(content = UpdateUserRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The user as changed", body = UserPublic),
        (status = 400, response = LastAdmin),
        (status = 409, response = EmailTaken),
        AdminErrors,
        BodyErrors,
        UserIdErrors,
    )
)]
pub(crate) async fn update_user(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: StrictJson<UpdateUserRequest>,
) -> Result<HttpResponse> {
    let target = user_id("id", &id)?;
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let email = request.email.map(|e| problems.email("email", &e));
    let status = problems.check(
        "status",
        request.status.map(|s| s.parse::<UserStatus>()).transpose(),
    );
    let note = problems.free_text("note", request.note.as_deref());
    let decided = matches!(
        status,
        Some(Some(UserStatus::Approved | UserStatus::Rejected))
    );
    if request.note.is_some() && !decided && status.is_some() {
        problems.check::<(), _>(
            "note",
            Err("is only taken beside a status of approved or rejected"),
        );
    }
    problems.finish()?;
    let changes = UserChanges {
        email: email.flatten(),
        is_admin: request.is_admin,
        status: status.flatten(),
        note: note.map(|n| n.as_str().to_owned()),
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let user = state
        .blocking(move || users.update_user(Actor::User(admin.id), target, &changes, &origin))
        .await?;
    Ok(HttpResponse::Ok().json(UserPublic::from(&user)))
}

#[utoipa::path(
    delete,
    path = "/api/auth/users/{id}",
    tag = "admin",
    summary = "Delete a user",
    description = "Ids are never reused. Deleting the last active admin is 400 `last_admin`.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The user's id"),
    ),
    responses(
        (status = 204, description = "Deleted; no body"),
        (status = 400, response = LastAdmin),
        AdminErrors,
        UserIdErrors,
    )
)]
pub(crate) async fn delete_user(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let target = user_id("id", &id)?;
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    state
        .blocking(move || users.delete_user(Actor::User(admin.id), target, &origin))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/auth/users/{id}/reset-password",
    tag = "admin",
    summary = "Set a user's password",
    description = "Every token the user held before stops working.",
    security(("bearer" = [])),
    params(
        ("id" = UserIdSchema, Path, description = "The user's id"),
    ),
    request_body(content = ResetPasswordRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Done", body = MessageResponse),
        AdminErrors,
        BodyErrors,
        UserIdErrors,
    )
)]
pub(crate) async fn reset_password(
    AdminUser(admin): AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: StrictJson<ResetPasswordRequest>,
) -> Result<HttpResponse> {
    let target = user_id("id", &id)?;
    let request = body.into_inner()?;
    let mut problems = Problems::default();
    let password = problems.password("password", request.password);
    problems.finish()?;
    let Some(password) = password else {
        return Err(missing("password is"));
    };
    let (users, origin) = (state.users.clone(), origin(&state, &req));
    let hash = state
        .hashing
        .run(move || users.hash_password(&password))
        .await??;
    let users = state.users.clone();
    state
        .blocking(move || {
            users.reset_password_hashed(Actor::User(admin.id), target, &hash, &origin)
        })
        .await?;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: "Password reset successfully",
    }))
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "service",
    summary = "The public keys that verify tokens (EdDSA); none under HS256",
    responses(
        (status = 200, description = "A JSON Web Key Set", body = JwkSet),
    )
)]
pub(crate) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.users.tokens().jwks())
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    summary = "Liveness: 200 while the process runs (no database access)",
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`", body = StatusResponse),
    )
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    summary = "Readiness: 200 when a write can commit now",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = StatusResponse),
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse> {
    use std::sync::atomic::Ordering;

    /// Clears the in-flight mark when the probe ends, however it ends (on its thread).
    struct Done(std::sync::Arc<crate::Readiness>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.in_flight.store(false, Ordering::SeqCst);
        }
    }

    let readiness = state.readiness.clone();
    // One probe out at a time: a probe beside it (two load balancers asking at once) waits
    // for it to come back, at most the bound; one stuck on a database that stopped
    // answering means not ready, without a second connection spent finding that out.
    let waited = std::time::Instant::now();
    while readiness.in_flight.swap(true, Ordering::SeqCst) {
        if waited.elapsed() >= readiness.bound {
            return Err(gatehouse_domain::Error::unavailable(
                "the last readiness probe is still waiting for the database",
            )
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let done = Done(readiness.clone());
    let users = state.users.clone();
    let probe = state.blocking(move || {
        let _done = done;
        users.ping()
    });
    // The probe's own bound cannot cover a server that stopped answering, nor a COMMIT
    // waiting for a synchronous standby (PostgreSQL lifts statement_timeout for it), so
    // the answer does not wait past the bound either way; the probe goes on alone.
    match tokio::time::timeout(readiness.bound, probe).await {
        Ok(outcome) => outcome?,
        Err(_) => {
            return Err(gatehouse_domain::Error::unavailable(format!(
                "the database did not answer the readiness probe within {:?}",
                readiness.bound
            ))
            .into())
        }
    }
    Ok(HttpResponse::Ok().json(StatusResponse { status: "ready" }))
}

/// The OpenAPI document as served ([`crate::openapi::served`]), made once when the app is
/// configured: the document lists this handler, so it is handed over rather than imported.
#[derive(Debug)]
pub(crate) struct OpenApiJson(pub(crate) std::result::Result<web::Bytes, serde_json::Error>);

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "docs",
    summary = "This OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The OpenAPI document of this server",
            content_type = "application/json", body = Object),
    )
)]
pub(crate) async fn openapi_json(document: web::Data<OpenApiJson>) -> Result<HttpResponse> {
    match &document.0 {
        Ok(json) => Ok(HttpResponse::Ok()
            .insert_header(ContentType::json())
            .body(json.clone())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub(crate) async fn not_found() -> Result<HttpResponse> {
    Err(ApiError::for_status(actix_web::http::StatusCode::NOT_FOUND))
}
